"""Event-loop latency during one big request: ``python3 bench/loop_latency.py [--rows N]``.

Starts the gateway (iris, access log off) twice, interleaved: with the codec worker
processes (the default, `codec_processes=2`) and with everything on the event loop
(`codec_processes=0`, the baseline, in the same run). Each time one ~60 MB `:predict`
body (2.9M rows of 4 features, under the default 64 MiB limit) is sent from a separate
process while two threads of this one poll `GET /healthz` and send 1-row predicts with
a 0.2 s deadline (`X-Request-Timeout`), each over its own keep-alive connection. Prints a
markdown table: the big request's time, /healthz p50/p99/max, the slowest small
predict and how far past its deadline it was answered, and the ratio of the worst
/healthz latencies.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import orjson

BENCH = Path(__file__).resolve().parent
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))

from bench.measure import free_port  # noqa: E402
from bench.procs import Server  # noqa: E402
from examples.sklearn_models import build_iris  # noqa: E402

SMALL = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
BUDGET_SECONDS = 0.2
SENDER = """
import http.client, sys, time
body = open(sys.argv[2], "rb").read()
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=300)
start = time.perf_counter()
connection.request("POST", "/v1/models/iris:predict", body, {"Content-Type": "application/json"})
answer = connection.getresponse()
answer.read()
print(answer.status, time.perf_counter() - start)
"""


def _probe(
    port: int,
    sender: subprocess.Popen[bytes],
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
) -> list[float]:
    """Send one request after another (10 ms apart) until `sender` exits; their latencies."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    seconds: list[float] = []
    while sender.poll() is None:
        start = time.perf_counter()
        connection.request(method, path, body, headers)
        connection.getresponse().read()
        seconds.append(time.perf_counter() - start)
        time.sleep(0.01)
    return seconds


def measure(work: Path, body_file: Path, codec_processes: int) -> dict[str, float]:
    """One gateway start, one big request, the probes' latencies (seconds)."""
    port = free_port()
    config = work / "gateway.json"
    models = [{"name": "iris", "platform": "sklearn", "base_path": str(work / "iris")}]
    config.write_text(json.dumps({"models": models}))
    env = {**os.environ, "GATEWAY_ACCESS_LOG": "false", "GATEWAY_LOG_LEVEL": "warning"}
    env["GATEWAY_CODEC_PROCESSES"] = str(codec_processes)
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
    server = Server(argv, env, work / f"gateway-{codec_processes}.log", BENCH.parent)
    try:
        server.wait_for_200(port, "/v1/models/iris:predict", SMALL, 120)
        time.sleep(2)  # the codec workers have started
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER, str(port), str(body_file)], stdout=subprocess.PIPE
        )
        headers = {"X-Request-Timeout": str(BUDGET_SECONDS)}
        probes = {
            "healthz": ThreadPoolExecutor(1).submit(
                _probe, port, sender, "GET", "/healthz", None, {}
            ),
            "predict": ThreadPoolExecutor(1).submit(
                _probe, port, sender, "POST", "/v1/models/iris:predict", SMALL, headers
            ),
        }
        healthz, predicts = probes["healthz"].result(), probes["predict"].result()
        status, seconds = sender.communicate()[0].split()
        assert status == b"200", status
    finally:
        server.stop()
    return {
        "big_s": float(seconds),
        "p50_ms": float(np.percentile(healthz, 50)) * 1e3,
        "p99_ms": float(np.percentile(healthz, 99)) * 1e3,
        "max_ms": max(healthz) * 1e3,
        "small_max_ms": max(predicts) * 1e3,
        "overshoot_ms": max(0.0, max(predicts) - BUDGET_SECONDS) * 1e3,
    }


def main() -> None:
    """Run both variants and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_900_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        build_iris(work)
        rows = np.round(np.random.default_rng(0).uniform(0, 8, (args.rows, 4)), 2)
        body_file = work / "big.json"
        body_file.write_bytes(orjson.dumps({"instances": rows.tolist()}))
        size_mb = body_file.stat().st_size / 2**20
        results = {processes: measure(work, body_file, processes) for processes in (2, 0)}
    print(f"One {size_mb:.1f} MB iris :predict body in flight ({args.rows:,} rows)\n")
    print(
        "| codec_processes | big request s | /healthz p50 ms | p99 ms | max ms "
        f"| slowest {BUDGET_SECONDS:g} s-deadline predict ms | past its deadline ms |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|")
    for processes, r in results.items():
        label = f"{processes} (default)" if processes else "0 (all on the event loop)"
        print(
            f"| {label} | {r['big_s']:.2f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['max_ms']:.1f} | {r['small_max_ms']:.1f} | {r['overshoot_ms']:.0f} |"
        )
    ratio = results[0]["max_ms"] / results[2]["max_ms"]
    print(f"\nWorst /healthz latency, all on the loop over with workers: {ratio:.1f}x")


if __name__ == "__main__":
    main()
