"""The benchmark's table (medians over rounds, with their spread) and its plot. Pure but the plot."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._servers import CONTENDERS

Pick = Callable[[dict[str, Any]], float]


def _values(results: dict[str, Any], name: str, variant: str, pick: Pick) -> list[float]:
    return [pick(run) for run in results["servers"][name][variant]]


def cell(values: list[float], fmt: str = "{:.1f}") -> str:
    """The median, and the range when there were several rounds."""
    if not values:
        return "-"
    mid = fmt.format(statistics.median(values))
    if len(values) < 2:
        return mid
    return f"{mid} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _row(results: dict[str, Any], label: str, variant: str, pick: Pick, fmt: str = "{:.1f}") -> list[str]:
    per = [_values(results, n, variant, pick) for n in CONTENDERS]
    stock, ours = _median(per[0]), _median(per[2])
    ratio = f"{ours / stock:.2f}x" if stock and stock == stock and ours == ours else "-"
    return [label, *[cell(v, fmt) for v in per], ratio]


def _share(results: dict[str, Any], name: str, variant: str) -> str:
    on = _median(_values(results, name, variant, lambda r: r["tool_1"]["cpu_ms"]))
    off = _median(_values(results, name, "off", lambda r: r["tool_1"]["cpu_ms"]))
    if not on or on != on or off != off:
        return "-"
    return f"{on - off:.1f} ms ({(on - off) / on:.0%})"


def headline(results: dict[str, Any]) -> list[list[str]]:
    direct = results["direct_backend"]
    cpu: Pick = lambda r: r["tool_1"]["cpu_ms"]  # noqa: E731
    rows = [
        ["", "stock", "AgentServer", "agentship", "agentship / stock"],
        _row(results, "CPU ms per tool request, traces into SQLite", "sqlite", cpu),
    ]
    if results["servers"]["agentship"]["remote"]:
        rows.append(_row(results, "CPU ms per tool request, traces to a remote server", "remote", cpu))
    rows.append(_row(results, "CPU ms per tool request, tracing off", "off", cpu))
    for variant in ("sqlite", "remote"):
        if results["servers"]["agentship"][variant]:
            rows.append(
                [
                    f"tracing's CPU per request ({variant})",
                    *[_share(results, n, variant) for n in CONTENDERS],
                    "",
                ]
            )
    for clients in (1, 16, 64):
        key = f"tool_{clients}"
        rows.append(
            _row(
                results,
                f"tool request req/s, {clients} client(s)",
                "sqlite",
                lambda r, k=key: r[k]["throughput_rps"],
            )
        )
        rows.append(
            _row(
                results,
                f"tool request p50 ms, {clients}",
                "sqlite",
                lambda r, k=key: r[k]["p50_ms"],
                "{:.0f}",
            )
        )
        rows.append(
            _row(
                results,
                f"tool request p95 ms, {clients}",
                "sqlite",
                lambda r, k=key: r[k]["p95_ms"],
                "{:.0f}",
            )
        )
    for clients in (16, 64):
        key = f"tool_{clients}"
        rows.append(
            _row(
                results,
                f"CPU ms per tool request at {clients} clients",
                "sqlite",
                lambda r, k=key: r[k]["cpu_ms"],
            )
        )
    rows += [
        _row(
            results,
            "1-call req/s, 500 ms backend, 64 clients",
            "sqlite",
            lambda r: r["one_call_64"]["throughput_rps"],
        ),
        _row(
            results,
            "1-call p50 ms, 500 ms backend, 64 clients",
            "sqlite",
            lambda r: r["one_call_64"]["p50_ms"],
            "{:.0f}",
        ),
        _row(
            results,
            f"overhead p50 ms, backend latency 0 (backend {direct['p50_ms']:.1f} ms)",
            "sqlite",
            lambda r: r["overhead"]["p50_ms"] - direct["p50_ms"],
        ),
        _row(results, "overhead p95 ms", "sqlite", lambda r: r["overhead"]["p95_ms"] - direct["p50_ms"]),
        _row(
            results,
            f"first event ms, 64 streams (backend first token {direct['first_token_64_ms']:.0f} ms at 64)",
            "sqlite",
            lambda r: r["first_event_64_ms"],
            "{:.0f}",
        ),
        _row(results, "idle RSS MiB", "sqlite", lambda r: r["idle_rss_mib"], "{:.0f}"),
        _row(results, "launch to ready s (warm)", "off", lambda r: r["ready_s"], "{:.2f}"),
        _row(
            results,
            "traces per request (SQLite)",
            "sqlite",
            lambda r: r["tool_1"]["traces_per_request"],
            "{:.2f}",
        ),
    ]
    return rows


STATEFUL_COLUMNS = (
    ("stock", "resend", "stock (resent history)"),
    ("agent_server", "resend", "AgentServer (resent history)"),
    ("agentship", "previous_response_id", "agentship previous_response_id"),
    ("agentship", "conversation", "agentship conversation"),
    ("agentship", "resend", "agentship store: false"),
)


def _stateful(results: dict[str, Any], name: str, mode: str, alone: str, pick: str) -> list[float]:
    runs = results["stateful"]["runs"].get(f"{name}:{mode}:{alone}", [])
    if pick == "total_cpu_ms":
        return [run["cpu_ms"] + run["tracking_cpu_ms"] for run in runs]
    return [run[pick] for run in runs]


def stateful_headline(results: dict[str, Any]) -> list[list[str]]:
    """The headline: a conversation's turn of the tool request, traces to the remote server."""
    state = results["stateful"]
    rows = [["", *(label for _, _, label in STATEFUL_COLUMNS), "agentship (previous_response_id) / stock"]]
    for label, pick, fmt in (
        ("CPU ms per turn: replicas + PostgreSQL", "cpu_ms", "{:.1f}"),
        ("… of which the replicas", "server_cpu_ms", "{:.1f}"),
        ("… of which PostgreSQL", "database_cpu_ms", "{:.1f}"),
        ("tracking server CPU ms per turn (not counted above)", "tracking_cpu_ms", "{:.1f}"),
        ("all three: replicas + PostgreSQL + tracking server", "total_cpu_ms", "{:.1f}"),
        (f"turns/s, {state['conversations']} conversations at once", "throughput_rps", "{:.1f}"),
        ("p50 ms per turn", "p50_ms", "{:.0f}"),
        ("p95 ms per turn", "p95_ms", "{:.0f}"),
        ("errors", "errors", "{:.0f}"),
    ):
        per = [_stateful(results, name, mode, "all", pick) for name, mode, _ in STATEFUL_COLUMNS]
        stock, ours = _median(per[0]), _median(per[2])
        ratio = (
            f"{ours / stock:.2f}x" if stock and stock == stock and ours == ours and pick != "errors" else ""
        )
        rows.append([label, *[cell(v, fmt) for v in per], ratio])
    return rows


def store_cost(results: dict[str, Any]) -> list[str]:
    """What keeping the conversation costs a turn, against the same turn stateless (store: false)."""
    lines = []
    for mode in ("previous_response_id", "conversation"):
        cpu = _median(_stateful(results, "agentship", mode, "all", "cpu_ms"))
        base = _median(_stateful(results, "agentship", "resend", "all", "cpu_ms"))
        alone = _median(_stateful(results, "agentship", mode, "1", "p50_ms"))
        alone_base = _median(_stateful(results, "agentship", "resend", "1", "p50_ms"))
        lines.append(
            f"store cost per turn, {mode}: {cpu - base:+.1f} ms CPU (replicas + PostgreSQL, {cpu:.1f} against "
            f"{base:.1f}); one conversation at a time, p50 {alone - alone_base:+.1f} ms ({alone:.1f} against {alone_base:.1f})"
        )
    return lines


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows)


def report(results: dict[str, Any]) -> str:
    lines = [
        f"{results['date']}, {results['machine']}, {results['load_generator']}, {results['rounds']} round(s): "
        "median (range)",
    ]
    if results.get("stateful"):
        lines += [_table(stateful_headline(results)), *store_cost(results)]
    if results.get("servers"):
        lines.append(_table(headline(results)))
    scale = results.get("workers")
    if scale and scale["1"] and scale["2"]:
        one, two = _median(scale["1"]), _median(scale["2"])
        lines.append(
            f"--workers 2: {cell(scale['2'])} req/s against {cell(scale['1'])} with 1 ({two / one:.2f}x), tool request, 64 clients"
        )
    mem = results.get("memory")
    if mem:
        slow = mem["slow_clients"]
        lines.append(
            f"RSS {mem['rss_after_100_mib']:.0f} MiB after 100 requests, {mem['rss_after_10000_mib']:.0f} MiB after 10,000 "
            f"(1,000 conversations): {mem['growth']:+.1%}; with {slow['clients']} clients reading a byte a second: "
            f"{slow['rss_mib']:.0f} MiB, another request's p50 meanwhile {slow['other_request_p50_ms']:.0f} ms"
        )
    lines.append(f"log_model + register: {results['log_register_s']:.2f} s")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (1 if results.get("stateful") else 0) + (2 if results.get("servers") else 0)
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.6), squeeze=False)
    if results.get("stateful"):
        _plot_stateful(results, axes[0][0])
    if not results.get("servers"):
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        return
    cpu, rps = axes[0][-2], axes[0][-1]
    names = {
        "stock": "stock mlflow models serve",
        "agent_server": "MLflow AgentServer",
        "agentship": "python -m serving",
    }
    variants = [v for v in ("sqlite", "remote", "off") if results["servers"]["agentship"][v]]
    width = 0.8 / len(variants)
    for i, variant in enumerate(variants):
        values = [_median(_values(results, n, variant, lambda r: r["tool_1"]["cpu_ms"])) for n in CONTENDERS]
        cpu.bar([x + i * width for x in range(len(CONTENDERS))], values, width, label=f"traces: {variant}")
    cpu.set_xticks(
        [x + width * (len(variants) - 1) / 2 for x in range(len(CONTENDERS))], [names[n] for n in CONTENDERS]
    )
    cpu.set_ylabel("CPU ms per request")
    cpu.set_title("tool request (2 model calls, 1 tool, 200 words)")
    cpu.legend()
    for name in CONTENDERS:
        levels = (1, 16, 64)
        rps.plot(levels, [_median(_values(results, name, "sqlite", lambda r, c=c: r[f"tool_{c}"]["throughput_rps"])) for c in levels],
                 marker="o", label=names[name])  # fmt: skip
    rps.set_xscale("log", base=2)
    rps.set_xlabel("concurrent clients")
    rps.set_ylabel("requests per second")
    rps.set_title("tool request throughput (traces into SQLite)")
    rps.grid(alpha=0.3)
    rps.legend()
    fig.suptitle(f"agentship vs stock MLflow serving — {results['date']}, {results['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plot_stateful(results: dict[str, Any], ax: Any) -> None:
    labels = [
        label.replace(" (", "\n(").replace("agentship ", "agentship\n") for _, _, label in STATEFUL_COLUMNS
    ]
    servers = [_median(_stateful(results, n, m, "all", "server_cpu_ms")) for n, m, _ in STATEFUL_COLUMNS]
    database = [_median(_stateful(results, n, m, "all", "database_cpu_ms")) for n, m, _ in STATEFUL_COLUMNS]
    xs = range(len(labels))
    ax.bar(xs, servers, 0.6, label="replicas")
    ax.bar(xs, database, 0.6, bottom=servers, label="PostgreSQL")
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_ylabel("CPU ms per turn")
    state = results["stateful"]
    ax.set_title(f"headline: a conversation's tool turn, 2 replicas\n{state['conversations']} conversations × "
                 f"{state['turns']} turns, traces to a remote server", fontsize=9)  # fmt: skip
    ax.legend()


def _markdown_table(rows: list[list[str]]) -> list[str]:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    return lines + ["| " + " | ".join(row) + " |" for row in body]


def markdown(results: dict[str, Any]) -> str:
    """The README's tables as Markdown: ``python -m bench._report RESULTS.json``."""
    lines: list[str] = []
    if results.get("stateful"):
        lines += [
            *_markdown_table(stateful_headline(results)),
            "",
            *(f"- {x}" for x in store_cost(results)),
            "",
        ]
    if results.get("servers"):
        lines += _markdown_table(headline(results))
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
