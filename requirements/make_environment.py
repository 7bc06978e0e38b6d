"""Write environment.yml from requirements/lock.txt (run by `make lock`).

The conda environment pins Python 3.11 and installs, through pip, the lock's
pins that apply to CPython 3.11 on Linux, so that it holds the same packages
as `make venv`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
OUT = ROOT / "environment.yml"
PYTHON = "3.11"
# Lowest and highest 3.11 patch releases, so that a marker that splits
# within 3.11 (e.g. python_full_version >= '3.11.5') keeps its marker.
PATCHES = (f"{PYTHON}.0", f"{PYTHON}.99")


def environments():
    for full in PATCHES:
        yield {
            "python_version": PYTHON,
            "python_full_version": full,
            "sys_platform": "linux",
            "platform_system": "Linux",
            "os_name": "posix",
            "platform_machine": "x86_64",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
        }


def pins() -> list[str]:
    lines = []
    for raw in LOCK.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is None:
            lines.append(line)
            continue
        hits = [req.marker.evaluate(env) for env in environments()]
        if all(hits):
            lines.append(line.split(";", 1)[0].strip())
        elif any(hits):
            lines.append(line)
    return lines


def main() -> int:
    body = "\n".join(f"      - {pin}" for pin in pins())
    OUT.write_text(
        "# Generated from requirements/lock.txt by `make lock`: do not edit.\n"
        "#   conda env create -f environment.yml\n"
        "#   conda activate focaledu\n"
        "#   pip install -e . --no-deps\n"
        "name: focaledu\n"
        "channels:\n"
        "  - conda-forge\n"
        "dependencies:\n"
        f"  - python={PYTHON}\n"
        "  - pip\n"
        "  - pip:\n"
        f"{body}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
