"""
Run the quickstart page (docs/quickstart.md) as a reader would, on this machine: ``make demo``.

The commands are read from the page's source, never retyped here. Each bash block the page marks
``<!-- quickstart: run -->`` runs in order in one shell, in a new directory; the block marked
``background`` (the emulator, "in a second terminal") runs beside it; at the block marked ``paste``
the shell runs the ``export`` line the emulator printed, as a reader pastes it. Includes
(``--8<-- "example_dags/..."``) are expanded as the docs site expands them.

One line is changed, and the run says so: the package is not on PyPI yet, so the page's
``pip install ... airflow-provider-blink`` installs the wheel built from this checkout (``dist/``,
``scripts/package.sh``) instead, with uv and the packages PyPI had on the ``newest`` date of
scripts/lines.txt (so the run does not change with tomorrow's releases).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mkdocs_hooks import expand

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "quickstart.md"
UV_VERSION = "0.13.9"  # as scripts/setup-venv.sh
BLOCK = re.compile(
    r"<!-- quickstart: (?P<role>run|background|paste) -->\n```bash\n(?P<body>.*?)\n```\n", re.S
)
INSTALL = re.compile(r"^pip install (?P<reqs>.*)\bairflow-provider-blink$", re.M)
RESULT_MARKER = "Blink result: "


def newest_date() -> str:
    for line in (REPO / "scripts" / "lines.txt").read_text().splitlines():
        if line.split()[:1] == ["newest"]:
            return line.split()[3]
    raise SystemExit("scripts/lines.txt has no 'newest' line")


def local_install(body: str, wheel: Path) -> str:
    """The page's install command, with the local wheel in place of the package from PyPI."""
    replacement = (
        f"python -m pip install --quiet 'uv=={UV_VERSION}' && "
        f"python -m uv pip install --quiet --exclude-newer {newest_date()} \\g<reqs>{wheel}"
    )
    new, count = INSTALL.subn(replacement, body)
    if count != 1:
        raise SystemExit(f"{PAGE}: expected one 'pip install ... airflow-provider-blink' line, found {count}")
    line = INSTALL.search(body)[0]  # type: ignore[index]
    print("== CHANGED, as the package is not on PyPI yet: the page's line")
    print(f"     {line}")
    print("   runs as")
    print(f"     {INSTALL.sub(replacement, line)}")
    return new


def script(wheel: Path, workdir: Path) -> str:
    """The shell script the page's blocks make, in order."""
    blocks = [(m["role"], expand(m["body"])) for m in BLOCK.finditer(PAGE.read_text())]
    roles = [role for role, _ in blocks]
    if roles.count("background") != 1 or roles.count("paste") != 1 or "run" not in roles:
        raise SystemExit(f"{PAGE}: expected run blocks, one background block and one paste block: {roles}")
    out = ["set -euo pipefail", "trap 'kill -- -$background 2>/dev/null || true' EXIT"]
    for role, body in blocks:
        if role == "run":
            out.append(local_install(body, wheel) if INSTALL.search(body) else body)
        elif role == "background":
            log = workdir / "emulator.log"
            out.append(f"set -m; ( {body.replace(chr(10), '; ')} ) > {log} 2>&1 & background=$!; set +m")
            out.append(
                f"for _ in $(seq 300); do grep -q '^export AIRFLOW_CONN_' {log} && break; sleep 0.1; done"
            )
        else:  # paste: what the emulator printed, not the page's sample
            out.append(
                f"echo '== pasting the export line the emulator printed'; eval \"$(grep '^export AIRFLOW_CONN_' {log})\""
            )
    return "\n".join(out) + "\n"


def main() -> int:
    wheels = sorted((REPO / "dist").glob("airflow_provider_blink-*.whl"))
    if len(wheels) != 1:
        raise SystemExit("dist/ needs exactly one airflow_provider_blink wheel: run scripts/package.sh first")
    workdir = Path(tempfile.mkdtemp(prefix="blink-quickstart-"))
    text = script(wheels[0], workdir)
    (workdir / "quickstart.sh").write_text(text)
    print(f"== running {PAGE.relative_to(REPO)} in {workdir} (script: {workdir / 'quickstart.sh'})")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV"))}
    started = time.monotonic()
    log = workdir / "quickstart.log"
    with log.open("wb") as out:
        code = subprocess.run(
            ["bash", str(workdir / "quickstart.sh")],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode
    lines = log.read_text(errors="replace").splitlines()
    results = [line.split(RESULT_MARKER, 1)[1] for line in lines if RESULT_MARKER in line]
    if code != 0 or not results:
        print("\n".join(lines[-60:]))
        print(f"== the quickstart FAILED (exit code {code}); full log: {log}")
        return 1
    print(f"== the quickstart worked in {time.monotonic() - started:.0f}s; the DAG's result: {results[-1]}")
    print(f"   full log: {log}")
    for heavy in ("blink-quickstart", "airflow-home"):  # the virtualenv and Airflow's home: 600 MB
        shutil.rmtree(workdir / heavy, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
