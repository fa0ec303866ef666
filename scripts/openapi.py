"""Export the server's OpenAPI document: python scripts/openapi.py [--check] [PATH]

PATH defaults to docs/reference/openapi.json. The document is the one ``GET /openapi.json``
serves, made from the server's route table with its A2A routes (served only with ``--a2a``).
``--check`` exits 1 if PATH differs from the document (it was not regenerated).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agentship.server.http.openapi import document
from agentship.server.routes import table

DEFAULT = Path(__file__).resolve().parents[1] / "docs" / "reference" / "openapi.json"


def render() -> str:
    return json.dumps(document(table(a2a=True)), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--check", action="store_true", help="fail if PATH is not up to date")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = args.path.read_text() if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is out of date: run python scripts/openapi.py", file=sys.stderr)
            return 1
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text)
    print(args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
