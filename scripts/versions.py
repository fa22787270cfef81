"""
The versions a virtualenv resolved, for the test logs: Airflow and the packages lines differ by.

``--check-floors``: fail unless each dependency of this package, its extras' too, is installed at the
lower bound ``pyproject.toml`` declares for it (what ``uv --resolution lowest-direct`` should give;
the ``test`` group installs the extras).
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement
from packaging.version import Version

SHOWN = (
    "apache-airflow",
    "apache-airflow-providers-common-compat",
    "cryptography",
    "pydantic",
    "requests",
    "aiohttp",
    "tenacity",
    "apache-airflow-providers-openlineage",
)


def installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def floors() -> dict[str, str]:
    """The declared lower bound of each dependency, the extras' too."""
    found = {}
    for text in requires("airflow-provider-blink") or []:
        requirement = Requirement(text)
        lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if lower:
            found[requirement.name] = lower[0]
    return found


def main() -> int:
    if "--check-floors" in sys.argv:
        wrong = {
            name: (floor, installed(name))
            for name, floor in floors().items()
            if installed(name) == "-" or Version(installed(name)) != Version(floor)
        }
        for name, (floor, got) in wrong.items():
            print(f"{name}: declared floor {floor}, installed {got}", file=sys.stderr)
        if wrong:
            return 1
        print("floors installed: " + ", ".join(f"{n}=={v}" for n, v in floors().items()))
        return 0
    print(", ".join(f"{name} {installed(name)}" for name in SHOWN))
    return 0


if __name__ == "__main__":
    sys.exit(main())
