"""The results as markdown: medians over rounds, the goal ratios, TF path, start-up and RSS."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from bench.targets import (
    GRPC_HPT,
    IRIS_1,
    IRIS_64,
    TF_HPT,
    TF_IMAGE,
    TF_IMAGE_V2_BINARY,
    TF_IMAGE_V2_JSON,
)

Record = dict[str, Any]
_GATEWAY_CONFIGS = ("gateway", "gateway-nobatch", "gateway-workers2", "gateway-accesslog")
_PEERS = (
    ("MLServer (defaults)", "mlserver", 5.0),
    ("MLServer (tuned)", "mlserver-tuned", 5.0),
    ("KServe", "kserve", 5.0),
    ("Starlette echo", "starlette-echo", 0.5),
    ("FastAPI echo", "fastapi-echo", None),
    ("bare ASGI echo", "asgi-echo", None),
)
# The gateway's Open Inference Protocol surface against the peers that speak it.
_V2_PEERS = (
    ("MLServer (defaults)", "mlserver", 5.0),
    ("MLServer (tuned)", "mlserver-tuned", 5.0),
)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Summary:
    """Medians of the raw records, by (target, workload, connections) and by target."""

    def __init__(self, records: list[Record], failed: dict[str, str]) -> None:
        self.runs: dict[tuple[str, str, int], list[Record]] = defaultdict(list)
        self.starts: dict[str, list[Record]] = defaultdict(list)
        self.failed = dict(failed)
        for record in records:
            if record["kind"] == "start":
                self.starts[record["target"]].append(record)
            else:
                key = (record["target"], record["workload"], record["connections"])
                self.runs[key].append(record)

    def run(self, target: str, workload: str, conns: int) -> Record | None:
        """Medians of the successful rounds, or {"error": ...} if none succeeded."""
        records = self.runs.get((target, workload, conns), [])
        good = [r for r in records if "error" not in r]
        if not good:
            reason = next((r["error"] for r in records), None) or self.start_error(target)
            return {"error": reason} if reason else None
        keys = ("rps", "p50_ms", "p99_ms", "cpu_tree_us", "cpu_main_us")
        merged: Record = {key: _median([r[key] for r in good]) for key in keys}
        clients = [r["client_cpu_us"] for r in good if r.get("client_cpu_us") is not None]
        merged["client_cpu_us"] = _median(clients) if clients else None
        merged["errors"] = sum(r["errors"] for r in good)
        merged["rounds"] = len(good)
        merged["busy"] = any(r.get("busy_before") for r in good)
        return merged

    def start_error(self, target: str) -> str | None:
        """Why `target` never ran (prepare or start failure), if it never did."""
        if target in self.failed:
            return self.failed[target]
        starts = self.starts.get(target, [])
        if starts and all("error" in s for s in starts):
            return str(starts[0]["error"])
        return None


def _cell(run: Record | None, key: str, fmt: str) -> str:
    if run is None:
        return "-"
    if "error" in run:
        return "failed: " + str(run["error"]).replace("|", "/")[:120]
    return format(run[key], fmt)


def throughput_table(summary: Summary, targets: list[str], connections: list[int]) -> list[str]:
    """Every (server, workload, connections): req/s, p50, p99, errors, server CPU per request."""
    lines = [
        "| server | workload | conns | req/s | p50 ms | p99 ms | errors | CPU µs/req |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    workloads = (IRIS_1, IRIS_64, TF_HPT, TF_IMAGE, GRPC_HPT)
    for target in targets:
        rows = [(w, c) for w in workloads for c in connections if (target, w, c) in summary.runs]
        if not rows and (reason := summary.start_error(target)):
            lines.append(f"| {target} | - | - | failed: {reason.replace('|', '/')} | | | | |")
        for workload, conns in rows:
            run = summary.run(target, workload, conns)
            if run is not None and "error" in run:
                lines.append(f"| {target} | {workload} | {conns} | {_cell(run, '', '')} |||||")
                continue
            cells = [_cell(run, k, f) for k, f in (("rps", ",.0f"), ("p50_ms", ".2f"))]
            cells += [_cell(run, k, f) for k, f in (("p99_ms", ".2f"), ("errors", "d"))]
            cpu = _cell(run, "cpu_tree_us", ".0f")
            cells.append(cpu + (" (server was busy before the run)" if run and run["busy"] else ""))
            lines.append(f"| {target} | {workload} | {conns} | " + " | ".join(cells) + " |")
    return lines


def _ratio(ours: Record | None, theirs: Record | None, goal: float | None) -> str:
    if not ours or not theirs:
        return "n/a"
    if "error" in ours or "error" in theirs:
        return "failed"
    ratio = ours["rps"] / theirs["rps"]
    text = f"{ratio:.0%}" if goal is not None and goal < 1 else f"{ratio:.2f}x"
    if goal is not None:
        text += " ✓" if ratio >= goal else " ✗"
    return text


def goals_table(
    summary: Summary,
    connections: list[int],
    ours: str = "gateway",
    peers: tuple[tuple[str, str, float | None], ...] = _PEERS,
) -> list[str]:
    """`ours` req/s over each peer's, iris 1 row (and 64 rows), per conns."""
    head = " | ".join(f"{c} conns" for c in connections)
    lines = [
        f"| {ours} vs | workload | goal | {head} |",
        "|---|---|---|" + "--:|" * len(connections),
    ]
    for label, peer, goal in peers:
        for workload in (IRIS_1, IRIS_64):
            if not any((peer, workload, c) in summary.runs for c in connections):
                if peer in summary.failed and workload == IRIS_1:
                    lines.append(f"| {label} | {workload} | - | failed: {summary.failed[peer]} |")
                continue
            goal_text = "-" if goal is None else (f">= {goal:.0%}" if goal < 1 else f">= {goal:g}x")
            cells = [
                _ratio(summary.run(ours, workload, c), summary.run(peer, workload, c), goal)
                for c in connections
            ]
            lines.append(f"| {label} | {workload} | {goal_text} | " + " | ".join(cells) + " |")
    p99 = [_cell(summary.run(ours, IRIS_1, c), "p99_ms", ".2f") for c in connections]
    lines.append(f"| ({ours} p99 ms) | " + IRIS_1 + " | - | " + " | ".join(p99) + " |")
    return lines


def gateway_configs_table(summary: Summary, connections: list[int]) -> list[str]:
    """req/s of each gateway configuration side by side."""
    lines = ["| workload | conns | " + " | ".join(_GATEWAY_CONFIGS) + " |"]
    lines.append("|---|--:|" + "--:|" * len(_GATEWAY_CONFIGS))
    for workload in (IRIS_1, IRIS_64):
        for conns in connections:
            cells = [
                _cell(summary.run(t, workload, conns), "rps", ",.0f") for t in _GATEWAY_CONFIGS
            ]
            lines.append(f"| {workload} | {conns} | " + " | ".join(cells) + " |")
    return lines


TF_GOAL_RATIO = 0.85  # gateway req/s over the plain grpc.aio client's, at 16 and 64 conns
TF_GOAL_CPU_US = 450.0  # gateway process CPU per TF request at 16 conns
_TF_GOAL_CONNS = (16, 64)


def _tf_targets(summary: Summary, targets: list[str]) -> list[str]:
    """The servers that ran the direct gRPC baseline (gateway-tf and any twin)."""
    return [t for t in targets if any(key[0] == t and key[1] == GRPC_HPT for key in summary.runs)]


def _paired_ratios(summary: Summary, target: str, conns: int) -> list[float]:
    """Gateway ÷ direct req/s of each round in which both ran."""
    direct = {
        r["round"]: r["rps"]
        for r in summary.runs.get((target, GRPC_HPT, conns), [])
        if "error" not in r
    }
    return [
        r["rps"] / direct[r["round"]]
        for r in summary.runs.get((target, TF_HPT, conns), [])
        if "error" not in r and direct.get(r["round"])
    ]


def tf_goals_table(summary: Summary, targets: list[str], connections: list[int]) -> list[str]:
    """Per server and connections: both throughputs, their ratio, CPU of both clients."""
    lines = [
        "| server | conns | gateway req/s | direct req/s | gateway ÷ direct (per round) "
        "| gateway CPU µs/req | direct client CPU µs/call | gateway - direct µs "
        "| backend µs/req: via gateway, direct |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for target in _tf_targets(summary, targets):
        for conns in connections:
            ours, direct = summary.run(target, TF_HPT, conns), summary.run(target, GRPC_HPT, conns)
            if not ours or not direct or "error" in ours or "error" in direct:
                lines.append(f"| {target} | {conns} | failed or missing ||||||||")
                continue
            ratios = _paired_ratios(summary, target, conns)
            ratio = _median(ratios)
            ratio_text = f"{ratio:.2f}x"
            if conns in _TF_GOAL_CONNS:
                ratio_text += " ✓" if ratio >= TF_GOAL_RATIO else " ✗"
            ratio_text += " (" + ", ".join(f"{r:.2f}" for r in ratios) + ")"
            cpu = ours["cpu_main_us"]
            cpu_text = f"{cpu:.0f}"
            if conns == _TF_GOAL_CONNS[0]:
                cpu_text += " ✓" if cpu <= TF_GOAL_CPU_US else " ✗"
            client = direct.get("client_cpu_us")
            client_text = "-" if client is None else f"{client:.0f}"
            extra = "-" if client is None else f"{cpu - client:+.0f}"
            backend_ours = ours["cpu_tree_us"] - ours["cpu_main_us"]
            backend_direct = direct["cpu_tree_us"] - direct["cpu_main_us"]
            lines.append(
                f"| {target} | {conns} | {ours['rps']:,.0f} | {direct['rps']:,.0f} "
                f"| {ratio_text} | {cpu_text} | {client_text} | {extra} "
                f"| {backend_ours:.0f}, {backend_direct:.0f} |"
            )
    lines += [
        "",
        f"Goals (issue 9, item 5): gateway ÷ direct >= {TF_GOAL_RATIO:g}x at "
        f"{' and '.join(map(str, _TF_GOAL_CONNS))} connections, gateway CPU <= "
        f"{TF_GOAL_CPU_US:.0f} µs per request at {_TF_GOAL_CONNS[0]}. The ratio is the median of "
        "the per-round ratios (each round runs the two next to each other); CPU figures are "
        "medians over rounds. Gateway CPU is the gateway process (event loop and gRPC "
        "threads), backend CPU its embedded TF backend; the direct client's is the "
        "grpc_load.py process during its calls.",
    ]
    return lines


def tf_table(summary: Summary, targets: list[str], connections: list[int]) -> list[str]:
    """Every TF run: latency, errors, gateway process CPU and backend CPU per request."""
    lines = [
        "| server | path | conns | req/s | p50 ms | p99 ms | errors | gateway process CPU "
        "µs/req | backend CPU µs/req |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    tf_servers = [t for t in targets if any(key[0] == t for key in summary.runs)]
    for target in tf_servers:
        for workload in (TF_HPT, GRPC_HPT, TF_IMAGE, TF_IMAGE_V2_JSON, TF_IMAGE_V2_BINARY):
            for conns in connections:
                run = summary.run(target, workload, conns)
                if run is None:
                    continue
                if "error" in run:
                    lines.append(f"| {target} | {workload} | {conns} | {_cell(run, '', '')} ||||||")
                    continue
                backend = run["cpu_tree_us"] - run["cpu_main_us"]
                gateway = "-" if workload == GRPC_HPT else f"{run['cpu_main_us']:.0f}"
                lines.append(
                    f"| {target} | {workload} | {conns} | {run['rps']:,.0f} | "
                    f"{run['p50_ms']:.2f} | {run['p99_ms']:.2f} | {run['errors']} | {gateway} "
                    f"| {backend:.0f} |"
                )
    return lines


def startup_table(summary: Summary, targets: list[str]) -> list[str]:
    """Start-up time (process start -> first 200 on a predict) and idle RSS, medians."""
    lines = [
        "| server | start -> first 200 s | RSS own process MB | RSS children MB "
        "| RSS tree MB | processes | idle CPU % |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for target in targets:
        good = [s for s in summary.starts.get(target, []) if "rss" in s]
        if not good:
            if reason := summary.start_error(target):
                lines.append(f"| {target} | failed: {reason.replace('|', '/')} ||||||")
            continue
        startup = f"{_median([s['startup_s'] for s in good]):.1f}"
        if "also_ready_s" in good[0]:
            startup += f" (TF; iris {_median([s['also_ready_s'] for s in good]):.1f})"
        mb = {k: _median([s["rss"][k] / 2**20 for s in good]) for k in ("main", "children", "tree")}
        procs = max(s["rss"]["processes"] for s in good)
        idle = _median([s.get("idle_cpu_pct", float("nan")) for s in good])
        lines.append(
            f"| {target} | {startup} | {mb['main']:.0f} | {mb['children']:.0f} "
            f"| {mb['tree']:.0f} | {procs} | {idle:.1f} |"
        )
    return lines


def _section(title: str, table: list[str]) -> list[str]:
    return [f"## {title}", "", *table, ""]


def render(records: list[Record], failed: dict[str, str], meta: dict[str, Any]) -> str:
    """The whole results.md; sections without data are left out."""
    summary = Summary(records, failed)
    targets, conns = meta["targets"], meta["connections"]
    ran = {key[0] for key in summary.runs} | set(failed)
    parts = ["# Server benchmark results", "", *meta["header"], ""]
    if "gateway" in ran and ran & {peer for _, peer, _ in _PEERS}:
        title = f"Goals: gateway (batching on) req/s over the others ({meta['rounds']} round(s))"
        parts += _section(title, goals_table(summary, conns))
    if "gateway-v2" in ran and ran & {peer for _, peer, _ in _V2_PEERS}:
        title = f"Goals: the gateway's v2 surface over MLServer's v2 ({meta['rounds']} round(s))"
        parts += _section(title, goals_table(summary, conns, "gateway-v2", _V2_PEERS))
    title = "All runs (medians; errors summed over rounds; CPU = server process tree)"
    parts += _section(title, throughput_table(summary, targets, conns))
    if len(ran & set(_GATEWAY_CONFIGS)) > 1:
        parts += _section("Gateway configurations (req/s)", gateway_configs_table(summary, conns))
    tf_servers = [t for t in targets if t.startswith("gateway-tf")]
    if ran & set(tf_servers):
        title = "TensorFlow path: gateway vs plain grpc.aio client on the same backend"
        parts += _section(title, tf_goals_table(summary, tf_servers, conns))
        parts += _section("TensorFlow runs", tf_table(summary, tf_servers, conns))
    parts += _section("Start-up and idle RSS (medians)", startup_table(summary, targets))
    return "\n".join(parts + meta["footer"]).rstrip() + "\n"
