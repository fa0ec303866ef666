"""The state store's statements and the replica's CPU per turn, and where that CPU goes.

    bash bench/setup.sh && .venv/bin/python bench/store_profile.py [--turns 5] [--conversations 4]
        [--style previous_response_id|conversation|stateless] [--tracing off|remote]
        [--profile N (py-spy)] [--yappi N (yappi's CPU clock)] [--quiet-log]

Serves the example agent (the tool request, 2 model calls) with its state on PostgreSQL,
turns on ``log_statement = all`` for the state database only, and runs conversations three
ways: continued with ``previous_response_id``, in a Conversations API conversation
(``conversation``), and stateless (``store: false``, the client resending the history). For
each it prints the statements the server sent per turn, grouped by kind and table (``BEGIN``
and ``COMMIT`` counted as the round trips they are), and the replica's and PostgreSQL's CPU
per turn (from /proc; PostgreSQL's includes logging every statement, unless ``--quiet-log``
turns the statements' log, and their count, off). ``--yappi N`` prints the N functions with
the most CPU per turn (inclusive, every thread; yappi's own cost inflates every figure about
six times: compare them with each other).
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
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
from agentship.testing.tracking_server import start_tracking_server  # noqa: E402
from bench._procs import cpu_s  # noqa: E402
from bench._servers import Stores, configure_backend, log_model, start  # noqa: E402
from bench._stateful import postgres_pid  # noqa: E402
from bench._workloads import TOOL_REQUEST  # noqa: E402

_LINE = re.compile(r"^(?P<db>\S+) LOG:  (?:statement|execute [^:]*): (?P<sql>.*)$")
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", re.IGNORECASE)


STYLES = ("previous_response_id", "conversation", "stateless")


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


def stored_history(pg: PostgresServer, database: str) -> tuple[int, int]:
    """The items, and bytes, the stored responses keep in their ``history`` columns."""
    found = pg.psql(
        "SELECT coalesce(sum(jsonb_array_length(history)), 0), coalesce(sum(pg_column_size(history)), 0) "
        "FROM agentship_responses",
        database,
    )
    items, size = found.split("|")
    return int(items), int(size)


def profiler(pid: int, out: Path, gil: bool = False) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` (its threads, idle time left out) into collapsed stacks; with
    ``gil``, only the thread holding the GIL (a thread waiting for it is not sampled)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o", str(out), "--nonblocking"]
    command += ["--gil"] if gil else []
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return process


def shares(collapsed: Path) -> tuple[int, Counter[str]]:
    """How many samples py-spy's collapsed stacks hold, and each frame's inclusive count (once
    per stack)."""
    total, inclusive = 0, Counter[str]()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        for frame in set(stack.split(";")):
            inclusive[frame] += n
    return total, inclusive


def hot(collapsed: Path, top: int) -> list[tuple[float, str]]:
    """The frames with the largest inclusive share of the samples (each counted once per stack)."""
    total, inclusive = shares(collapsed)
    return [(n / total, frame) for frame, n in inclusive.most_common(top)] if total else []


def cpu_by_function(path: Path, turns: int, top: int) -> list[tuple[float, str]]:
    """yappi's inclusive CPU per function, per turn; this project's, the SDK's session and the
    state store's drivers, and the largest of the rest."""
    import pstats

    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    rows = []
    for (file, line, name), (_, _, _, cumulative, _) in stats.items():
        rows.append((cumulative / turns * 1000, f"{name} ({'/'.join(Path(file).parts[-3:])}:{line})"))
    return sorted(rows, reverse=True)[:top]


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
    parser.add_argument(
        "--quiet-log",
        action="store_true",
        help="log no statements (they are not counted), so PostgreSQL's CPU per turn is its own",
    )
    parser.add_argument("--profile", type=int, default=0, help="py-spy the replica: print this many frames")
    parser.add_argument("--yappi", type=int, default=0, help="yappi's CPU profile: print this many functions")
    parser.add_argument(
        "--tracing",
        choices=("off", "remote"),
        default="off",
        help="remote: traces to an mlflow server on PostgreSQL",
    )
    parser.add_argument(
        "--style", action="append", choices=STYLES, help="only this way of continuing (again for more)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agentship-store-profile-"))
    logs = work / "logs"
    backend = start_scripted_llm(logs)
    pg = start_postgres()
    server = tracking = None
    styles = args.style or list(STYLES)
    try:
        env = {"MLFLOW_EXPERIMENT_NAME": "store-profile", "OPENAI_BASE_URL": backend.url + "/v1"}
        stores = Stores(sqlite_uri=f"sqlite:///{work / 'mlflow.db'}")
        model, _ = log_model({**env, "MLFLOW_TRACKING_URI": stores.sqlite_uri}, work)
        database = pg.create_database("profile_state")
        if args.tracing == "remote":
            tracking = start_tracking_server(pg, work / "tracking", logs, database="profile_tracking")
            stores.remote_url = tracking.url
        server = start(
            "agentship",
            args.tracing,
            model,
            env,
            stores,
            logs,
            extra={"AGENTSHIP_STATE_URL": pg.url(database)},
        )
        configure_backend(backend)
        url = server.server.url
        with httpx.Client(timeout=60) as client:
            for style in styles:
                run(client, url, style, 1, 2)  # warm: the driver's statement cache, the pool
            if not args.quiet_log:
                pg.psql(f"ALTER DATABASE {database} SET log_statement = 'all'")
            pg.psql("ALTER SYSTEM SET log_line_prefix = '%d '")
            pg.psql("SELECT pg_reload_conf()")
            server.server.stop()  # new connections pick the database's setting up
            launcher = [sys.executable, str(REPO / "bench" / "_yappi_serve.py")] if args.yappi else None
            extra = {
                "AGENTSHIP_STATE_URL": pg.url(database),
                "AGENTSHIP_YAPPI_OUT": str(work / "yappi.pstat"),
            }
            server = start(
                "agentship", args.tracing, model, env, stores, logs, extra=extra, launcher=launcher
            )
            url = server.server.url
            run(client, url, "stateless", 1, 1)
            for style in styles:
                run(client, url, style, 1, 2)  # warm again on the new process
                time.sleep(0.5)
                since = len(pg.log_text())
                spy = profiler(server.server.process.pid, work / f"{style}.txt") if args.profile else None
                if args.yappi:
                    server.server.process.send_signal(signal.SIGUSR1)
                    time.sleep(0.5)
                history_before = stored_history(pg, database)
                cpu_before = cpu_s([server.server.process.pid])
                database_before = cpu_s([postgres_pid(pg.data)])
                count = run(client, url, style, args.conversations, args.turns)
                cpu = cpu_s([server.server.process.pid]) - cpu_before
                database_cpu = cpu_s([postgres_pid(pg.data)]) - database_before
                kept = [
                    after - before
                    for after, before in zip(stored_history(pg, database), history_before, strict=True)
                ]
                time.sleep(0.5)
                if args.yappi:
                    server.server.process.send_signal(signal.SIGUSR2)
                    time.sleep(3.0)
                    print(f"\n{style}: CPU per turn by function (yappi, inclusive, ms)")
                    for ms, name in cpu_by_function(work / "yappi.pstat", count, args.yappi):
                        print(f"  {ms:7.2f}  {name}")
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(timeout=60)
                    print(f"\n{style}: where the replica's time went (py-spy, inclusive share of samples)")
                    for share, frame in hot(work / f"{style}.txt", args.profile):
                        print(f"  {share:6.1%}  {frame}")
                found = statements(pg, since, database)
                if args.dump:
                    lines = pg.log_text()[since:].splitlines()
                    print("\n".join(line for line in lines if line.startswith(database))[: args.dump])
                total = sum(found.values())
                counted = (
                    "statements not logged" if args.quiet_log else f"{total / count:.1f} statements per turn"
                )
                print(f"\n{style}: {counted} ({count} turns), "
                      f"the replica's CPU {cpu / count * 1000:.1f} ms per turn, PostgreSQL's "
                      f"{database_cpu / count * 1000:.1f} ms{'' if args.quiet_log else ' (logging every statement)'}; "
                      f"the responses keep "
                      f"{kept[0] / count:.1f} history items ({kept[1] / count / 1024:.1f} KiB) per turn")  # fmt: skip
                for name, n in found.most_common():
                    print(f"  {n / count:5.2f}  {name}")
    finally:
        if server is not None:
            server.server.stop()
        if tracking is not None:
            tracking.stop()
        backend.stop()
        stop_postgres(pg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
