"""
What the release files must and must not hold: ``python scripts/check_wheel.py WHEEL SDIST``.

The wheel: the package with its ``py.typed`` and the emulator (``testing``), the provider entry point,
the license, a long description for PyPI (no relative link, no developer command), Project-URLs; no
tests, examples, docs, scripts or bytecode, and no developer extras (they are dependency groups). The
sdist: the sources, tests, docs, LICENSE and CHANGELOG.md.
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

WHEEL_MUST = [
    "airflow_provider_blink/__init__.py",
    "airflow_provider_blink/py.typed",
    "airflow_provider_blink/operators/blink.py",
    "airflow_provider_blink/testing/__main__.py",
    "airflow_provider_blink/testing/pytest_plugin.py",
]
WHEEL_MUST_NOT = re.compile(r"^(tests|example_dags|docs|scripts|bench)/|__pycache__|\.pyc$|^\.")
SDIST_MUST = [
    "LICENSE",
    "CHANGELOG.md",
    "README.md",
    "pyproject.toml",
    "airflow_provider_blink/__init__.py",
    "tests/conftest.py",
    "example_dags/example_blink_enrich_pipeline.py",
    "docs/quickstart.md",
]
RELATIVE_LINK = re.compile(r"\]\((?!https?://|#)[^)]*\)")


def check_wheel(path: Path) -> list[str]:
    problems = []
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        problems += [f"wheel lacks {n}" for n in WHEEL_MUST if n not in names]
        problems += [f"wheel holds {n}" for n in names if WHEEL_MUST_NOT.search(n)]
        if f"{dist_info}/licenses/LICENSE" not in names:
            problems.append("wheel lacks the LICENSE file")
        elif "Apache License" not in wheel.read(f"{dist_info}/licenses/LICENSE").decode():
            problems.append("the wheel's LICENSE is not the Apache License")
        entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
        if "[apache_airflow_provider]" not in entry_points or "get_provider_info" not in entry_points:
            problems.append("wheel lacks the apache_airflow_provider entry point")
        meta = Parser().parsestr(wheel.read(f"{dist_info}/METADATA").decode())
    if meta["License-Expression"] != "Apache-2.0":
        problems.append(f"License-Expression is {meta['License-Expression']!r}")
    urls = {value.split(",")[0] for value in meta.get_all("Project-URL") or []}
    problems += [
        f"no Project-URL {label!r}" for label in ("Documentation", "Source", "Changelog") if label not in urls
    ]
    extras = meta.get_all("Provides-Extra") or []
    problems += [
        f"developer extra {extra!r} published"
        for extra in extras
        if extra in ("test", "e2e", "scale", "docs", "release")
    ]
    description = meta.get_payload()
    if meta["Description-Content-Type"] != "text/markdown":
        problems.append(f"Description-Content-Type is {meta['Description-Content-Type']!r}")
    problems += [
        f"long description has a relative link {link}" for link in RELATIVE_LINK.findall(description)
    ]
    problems += [
        f"long description shows a developer command: {cmd!r}" for cmd in re.findall(r"make \w+", description)
    ]
    if "BlinkExecutePlaybookOperator" not in description:
        problems.append("long description does not show the operator")
    return problems


def check_sdist(path: Path) -> list[str]:
    with tarfile.open(path) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    return [f"sdist lacks {n}" for n in SDIST_MUST if n not in names]


def main(paths: list[str]) -> int:
    problems = []
    for path in map(Path, paths):
        problems += check_wheel(path) if path.suffix == ".whl" else check_sdist(path)
    for problem in problems:
        print(f"check_wheel: {problem}", file=sys.stderr)
    if not problems:
        print(f"== release files as they should be: {', '.join(Path(p).name for p in paths)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
