"""Print each direct dependency of pyproject.toml (its dependencies and dev extra) pinned to the
floor it declares (``name>=X`` becomes ``name==X``): the constraints scripts/floors.sh resolves
with, so that every floor is installed exactly as declared, or the resolution fails naming it.

A range without a floor prints nothing for that dependency: there is no floor to test.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def floors(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    out: list[str] = []
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        match = _REQ.match(requirement.split(";")[0])
        if match is None:
            raise ValueError(f"cannot read the requirement {requirement!r}")
        name, spec = match.groups()
        low = [part.strip()[2:].strip() for part in spec.split(",") if part.strip().startswith(">=")]
        out += [f"{name}=={low[0]}"] if low else []
    return out


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "pyproject.toml"
    print("\n".join(floors(path)))
