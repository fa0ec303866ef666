"""The state store's statements per turn, read from PostgreSQL's own log.

    .venv/bin/python bench/store_profile.py [--turns 5] [--conversations 4]

Serves the example agent (the tool request, 2 model calls) with its state on PostgreSQL and
tracing off, turns on ``log_statement = all`` for the state database only, and runs
conversations three ways: continued with ``previous_response_id``, in a Conversations API
conversation (``conversation``), and stateless (``store: false``, the client resending the
history). For each it prints the statements the server sent per turn, grouped by kind and
table (``BEGIN``/``COMMIT`` and the pool's pings counted as the round trips they are).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from agentship.testing.postgres import PostgresServer, start_postgres, stop_postgres  # noqa: E402
from agentship.testing.processes import start_scripted_llm  # noqa: E402
from bench._servers import Stores, configure_backend, log_model, start  # noqa: E402
from bench._workloads import TOOL_REQUEST  # noqa: E402

_LINE = re.compile(r"^(?P<db>\S+) LOG:  (?:statement|execute [^:]*): (?P<sql>.*)$")
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", re.IGNORECASE)


def kind(sql: str) -> str:
    """``INSERT responses``, ``SELECT agent_messages``, ``BEGIN``…: what a statement is."""
    verb = sql.strip().split(None, 1)[0].upper().rstrip(";") if sql.strip() else "(empty: ping)"
    table = _TABLE.search(sql)
    return f"{verb} {table.group(1)}" if table and verb in {"SELECT", "INSERT", "UPDATE", "DELETE"} else verb


def statements(pg: PostgresServer, since: int, database: str) -> Counter[str]:
    text = pg.log_text()[since:]
    found: Counter[str] = Counter()
    for line in text.splitlines():
        match = _LINE.match(line)
        if match and match.group("db") == database:
            found[kind(match.group("sql"))] += 1
    return found


def turn_body(style: str, message: str, previous: str | None, conversation: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "agent", "input": [{"role": "user", "content": message}]}
    if style == "previous_response_id" and previous:
        body["previous_response_id"] = previous
    if style == "conversation":
        body["conversation"] = conversation
    return body


def run(client: httpx.Client, url: str, style: str, conversations: int, turns: int) -> int:
    for _ in range(conversations):
        previous: str | None = None
        conversation = None
        history: list[dict[str, Any]] = []
        if style == "conversation":
            conversation = client.post(f"{url}/v1/conversations", json={}).raise_for_status().json()["id"]
        for turn in range(turns):
            message = f"{TOOL_REQUEST} (turn {turn})"
            if style == "stateless":
                history.append({"role": "user", "content": message})
                body: dict[str, Any] = {"model": "agent", "input": list(history), "store": False}
            else:
                body = turn_body(style, message, previous, conversation)
            answer = client.post(f"{url}/v1/responses", json=body).raise_for_status().json()
            previous = answer["id"]
            if style == "stateless":
                history += [{k: v for k, v in i.items() if k != "status"} for i in answer["output"]]
    return conversations * turns


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--dump", type=int, default=0, help="print this many characters of the log")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agentship-store-profile-"))
    logs = work / "logs"
    backend = start_scripted_llm(logs)
    pg = start_postgres()
    server = None
    try:
        env = {"MLFLOW_EXPERIMENT_NAME": "store-profile", "OPENAI_BASE_URL": backend.url + "/v1"}
        stores = Stores(sqlite_uri=f"sqlite:///{work / 'mlflow.db'}")
        model, _ = log_model({**env, "MLFLOW_TRACKING_URI": stores.sqlite_uri}, work)
        database = pg.create_database("profile_state")
        server = start(
            "agentship", "off", model, env, stores, logs, extra={"AGENTSHIP_STATE_URL": pg.url(database)}
        )
        configure_backend(backend)
        url = server.server.url
        with httpx.Client(timeout=60) as client:
            for style in ("previous_response_id", "conversation", "stateless"):
                run(client, url, style, 1, 2)  # warm: the driver's statement cache, the pool
            pg.psql(f"ALTER DATABASE {database} SET log_statement = 'all'")
            pg.psql("ALTER SYSTEM SET log_line_prefix = '%d '")
            pg.psql("SELECT pg_reload_conf()")
            server.server.stop()  # new connections pick the database's setting up
            server = start(
                "agentship", "off", model, env, stores, logs, extra={"AGENTSHIP_STATE_URL": pg.url(database)}
            )
            url = server.server.url
            run(client, url, "stateless", 1, 1)
            for style in ("previous_response_id", "conversation", "stateless"):
                run(client, url, style, 1, 2)  # warm again on the new process
                time.sleep(0.5)
                since = len(pg.log_text())
                count = run(client, url, style, args.conversations, args.turns)
                time.sleep(0.5)
                found = statements(pg, since, database)
                if args.dump:
                    lines = pg.log_text()[since:].splitlines()
                    print("\n".join(line for line in lines if line.startswith(database))[: args.dump])
                total = sum(found.values())
                print(f"\n{style}: {total / count:.1f} statements per turn ({count} turns)")
                for name, n in found.most_common():
                    print(f"  {n / count:5.2f}  {name}")
    finally:
        if server is not None:
            server.server.stop()
        backend.stop()
        stop_postgres(pg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
