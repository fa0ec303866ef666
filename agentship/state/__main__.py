"""``python -m agentship.state upgrade|current [URL]``: manage the state store's schema.

The URL defaults to ``AGENTSHIP_STATE_URL`` (and then to the SQLite file beside the tracking
store). ``python -m serving`` upgrades the schema by itself at startup; this is for operators
who prefer to migrate first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from agentship.errors import AgentError
from agentship.state.engine import create_engine, transaction
from agentship.state.migrate import current_revision, ensure_schema, head_revision
from agentship.state.settings import STATE_URL_ENV, StateSettings


async def _run(command: str, settings: StateSettings) -> str:
    engine = create_engine(settings)
    try:
        if command == "upgrade":
            return await ensure_schema(engine)
        async with transaction(engine) as conn:
            return str(await conn.run_sync(current_revision))
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentship.state", description=__doc__)
    parser.add_argument("command", choices=["upgrade", "current", "head"])
    parser.add_argument("url", nargs="?")
    args = parser.parse_args(argv)
    if args.command == "head":
        print(head_revision())
        return 0
    environ = {**os.environ, **({STATE_URL_ENV: args.url} if args.url else {})}
    try:
        settings = StateSettings.from_environ(environ)
        if settings is None:
            print("the state store is switched off (AGENTSHIP_STATE_URL=none)", file=sys.stderr)
            return 2
        print(f"{settings.describe()}: {asyncio.run(_run(args.command, settings))}")
    except AgentError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
