"""
The documentation site's include directive: code shown in the docs is read from the files that run.

A line ``--8<-- "example_dags/example_blink_mapped.py:howto_operator_blink_mapped"`` (pymdownx.snippets'
spelling) is replaced by the lines between that file's ``# [START howto_operator_blink_mapped]`` and
``# [END howto_operator_blink_mapped]`` markers (Airflow's own example-DAG markers), dedented;
``--8<-- "path"`` includes a whole file. Paths are relative to the repository. A missing file or
marker stops the build. ``scripts/quickstart.py`` expands the quickstart page with the same function.

README.md cannot include (GitHub and PyPI show it as it is), so its code blocks after a
``<!-- include: path[:section] -->`` line are copies that the build checks against the source:
``python3 scripts/mkdocs_hooks.py`` rewrites them.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DIRECTIVE = re.compile(r'^(?P<indent>[ \t]*)--8<-- "(?P<path>[^":]+)(?::(?P<section>[\w.-]+))?"[ \t]*$', re.M)


class IncludeError(Exception):
    """An include names a file or a marker that does not exist."""


def section(path: str, name: str | None) -> str:
    """The text of ``path`` (relative to the repository), or of its section ``name``, dedented."""
    file = REPO / path
    if not file.is_file():
        raise IncludeError(f"--8<-- {path!r}: no such file")
    text = file.read_text()
    if name is None:
        return text.rstrip("\n")
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == f"# [START {name}]"]
    ends = [i for i, line in enumerate(lines) if line.strip() == f"# [END {name}]"]
    if len(starts) != 1 or len(ends) != 1 or ends[0] <= starts[0]:
        raise IncludeError(f"--8<-- {path}:{name}: needs one '# [START {name}]' before one '# [END {name}]'")
    return textwrap.dedent("\n".join(lines[starts[0] + 1 : ends[0]])).strip("\n")


def expand(markdown: str) -> str:
    """``markdown`` with every include directive replaced by what it names."""

    def include(match: re.Match[str]) -> str:
        body = section(match["path"], match["section"])
        return textwrap.indent(body, match["indent"], lambda line: bool(line.strip()))

    return DIRECTIVE.sub(include, markdown)


README_INCLUDE = re.compile(
    r"(?P<head><!-- include: (?P<path>[^ :]+)(?::(?P<section>[\w.-]+))? -->\n```python\n)(?P<body>.*?)\n```",
    re.S,
)


def readme_synced(readme: str) -> str:
    """``readme`` with each block after an include line replaced by the current source."""
    return README_INCLUDE.sub(lambda m: m["head"] + section(m["path"], m["section"]) + "\n```", readme)


def on_pre_build(**kwargs: Any) -> None:
    """MkDocs hook: README.md's copied code is what the examples hold."""
    from mkdocs.exceptions import PluginError

    readme = (REPO / "README.md").read_text()
    try:
        synced = readme_synced(readme)
    except IncludeError as exc:
        raise PluginError(f"README.md: {exc}") from None
    if synced != readme:
        raise PluginError(
            "README.md: a code block differs from the file it copies; run python3 scripts/mkdocs_hooks.py"
        )


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs hook: expand the includes of each page (an error fails the build)."""
    from mkdocs.exceptions import PluginError

    try:
        return expand(markdown)
    except IncludeError as exc:
        raise PluginError(f"{kwargs['page'].file.src_path}: {exc}") from None


if __name__ == "__main__":
    path = REPO / "README.md"
    path.write_text(readme_synced(path.read_text()))
    sys.exit(0)
