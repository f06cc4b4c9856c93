"""What tracing costs: ``python3 bench/tracing_cost.py [--rounds 2] [--duration 15]``.

Starts the benchmark's `gateway` server (iris, batching on, access log off) fresh for each
variant and round, interleaved, and drives the scikit-learn 1-row predict with wrk (the
server benchmark's own preparation, launch and measurement: bench/prepare.py,
bench/measure.py). Variants, all by OTEL_* variables only:

- gateway-tracing-off: OTEL_TRACES_EXPORTER=none (the default: no span is made)
- gateway-tracing-on: OTEL_TRACES_EXPORTER=otlp to a real OTLP/gRPC receiver in this
  process that counts the spans and drops them (every request sampled: 4 spans each)
- gateway-tracing-sampled-out: the same with OTEL_TRACES_SAMPLER=always_off (the
  middleware's work, nothing recorded or exported)

Prints a markdown section: per variant the medians over rounds of req/s, p99 and the
gateway process tree's CPU per request, and the on/off ratios per round and their median.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

BENCH = Path(__file__).resolve().parent
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))

from bench import machine  # noqa: E402
from bench.measure import free_port, run_target  # noqa: E402
from bench.prepare import prepare  # noqa: E402
from bench.targets import IRIS_1, Target, all_targets  # noqa: E402

OFF, ON, SAMPLED_OUT = "gateway-tracing-off", "gateway-tracing-on", "gateway-tracing-sampled-out"


class SpanSink:
    """A real OTLP/gRPC trace receiver on a loopback port: counts spans, keeps none."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self.port = free_port()
        self.spans = 0
        self._lock = threading.Lock()
        self._request = ExportTraceServiceRequest
        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(self._export)},
        )
        self._server = grpc.server(ThreadPoolExecutor(max_workers=2), handlers=(handler,))
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        self._server.start()

    def _export(self, request: bytes, context: Any) -> bytes:
        parsed = self._request.FromString(request)
        count = sum(len(s.spans) for r in parsed.resource_spans for s in r.scope_spans)
        with self._lock:
            self.spans += count
        return b""  # an empty ExportTraceServiceResponse: all accepted

    def stop(self) -> None:
        """Stop listening."""
        self._server.stop(None)


def variants(sink_port: int) -> list[Target]:
    """The `gateway` server with tracing off, on, and on but sampled out."""
    base = next(t for t in all_targets(workers_flag=False) if t.name == "gateway")
    base = dataclasses.replace(base, workloads={IRIS_1: base.workloads[IRIS_1]})
    traced = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_SERVICE_NAME": "tfs-gateway-bench",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    }
    return [
        dataclasses.replace(base, name=OFF, env={**base.env, "OTEL_TRACES_EXPORTER": "none"}),
        dataclasses.replace(base, name=ON, env={**base.env, **traced}),
        dataclasses.replace(
            base, name=SAMPLED_OUT, env={**base.env, **traced, "OTEL_TRACES_SAMPLER": "always_off"}
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    """Prepare, run the interleaved rounds, print the markdown section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=15.0, help="measured s per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", type=Path, help="logs dir (default bench/out/tracing-<time>)")
    args = parser.parse_args(argv)
    command = "python3 bench/tracing_cost.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    out = args.out or BENCH / "out" / time.strftime("tracing-%Y%m%d-%H%M%S")
    (out / "logs").mkdir(parents=True, exist_ok=True)
    sink = SpanSink()
    targets = variants(sink.port)
    work = BENCH / ".work"
    _, failed = prepare(targets, work, BENCH / ".venvs", out / "logs")
    if failed:
        raise SystemExit(f"preparation failed: {failed}")
    options = {"connections": [args.connections], "duration": args.duration}
    options |= {"warmup": args.warmup, "workloads": [IRIS_1]}
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    try:
        for round_no in range(1, args.rounds + 1):
            shift = (round_no - 1) % len(targets)
            for target in targets[shift:] + targets[:shift]:
                print(f"round {round_no}: {target.name}", flush=True)
                for record in run_target(target, round_no, options, work, {}, out):
                    if "error" in record:
                        raise SystemExit(f"{target.name}: {record['error']}")
                    if record["kind"] == "run":
                        runs[target.name].append(record)
    finally:
        sink.stop()
    print()
    print(_report(runs, args, command, sink.spans))


def _report(runs: dict[str, list[dict[str, Any]]], args: Any, command: str, spans: int) -> str:
    median = statistics.median
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M %Z')}, {machine.machine()}; "
        f"{args.rounds} interleaved round(s), each server started fresh, {args.warmup:g} s "
        f"warm-up then {args.duration:g} s measured, wrk -t1 -c{args.connections}, iris 1 row:",
        "",
        f"    {command}",
        "",
        "| server | req/s | p99 ms | CPU µs/req | req/s vs off, per round | median |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    off = runs[OFF]
    for name, records in runs.items():
        ratios = [r["rps"] / o["rps"] for r, o in zip(records, off, strict=True)]
        lines.append(
            f"| {name} | {median(r['rps'] for r in records):,.0f} "
            f"| {median(r['p99_ms'] for r in records):.1f} "
            f"| {median(r['cpu_tree_us'] for r in records):.0f} "
            f"| {', '.join(f'{x:.2f}' for x in ratios)} | {median(ratios):.2f} |"
        )
    traced = sum(r["requests"] for r in runs[ON])
    lines.append("")
    lines.append(
        f"Spans received by the OTLP sink: {spans:,}, warm-ups and start-up probes included "
        f"({traced:,} measured requests traced, 4 spans each)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
