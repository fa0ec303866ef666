"""Generate the docs site's reference pages from the code: ``python scripts/gen_ref.py``.

Writes ``docs/reference/{cli,config,environment,metrics,http-api}.md`` (git-ignored: they are
rebuilt for every build by ``scripts/docs.sh``). Run it with the project's Python: it imports
agentship. Fails, naming them, when the environment variables the code reads and the page's
catalog (``scripts/docs_ref/env_catalog.py``) disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO)]  # docs_ref, and this clone's agentship

from docs_ref.pages import write_all  # noqa: E402


def main() -> int:
    try:
        written = write_all(REPO)
    except ValueError as exc:
        print(f"gen_ref: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
