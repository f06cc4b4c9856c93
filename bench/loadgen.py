"""Load generators: Debian's wrk (HTTP) and the gRPC driver (bench/grpc_load.py), as children.

Both return a `Load`: requests completed, errors, seconds, p50/p99 latency, and for the
gRPC driver its own CPU per call.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WRK = "wrk"
_MARK = "BENCH_JSON "


@dataclass(frozen=True)
class Load:
    """One measured run."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu_us: float | None = None  # the load generator's CPU per request, if it says

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def _parse(stdout: str) -> dict[str, float]:
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            return dict(json.loads(line[len(_MARK) :]))
    raise RuntimeError(f"no result line in load generator output: {stdout[-300:]!r}")


def run_wrk(
    url: str,
    body: Path,
    connections: int,
    seconds: float,
    headers: Mapping[str, str] | None = None,
) -> Load:
    """`wrk -t1 -cN -dS --latency` POSTing `body` to `url` (with extra `headers`)."""
    argv = [
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(BENCH_DIR / "post.lua"),
        url,
        "--",
        str(body),
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    data = _parse(done.stdout)
    errors = sum(int(data[key]) for key in ("non2xx", "connect", "read", "write", "timeout"))
    return Load(
        requests=int(data["requests"]),
        errors=errors,
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
    )


def run_grpc(target: str, model: str, connections: int, seconds: float) -> Load:
    """bench/grpc_load.py: `connections` concurrent grpc.aio callers of Predict on `target`."""
    argv = [
        sys.executable,
        str(BENCH_DIR / "grpc_load.py"),
        "--target",
        target,
        "--model",
        model,
        "--concurrency",
        str(connections),
        "--duration",
        str(seconds),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 180)
    if done.returncode != 0:
        raise RuntimeError(f"grpc driver failed: {done.stderr.strip()[-300:]}")
    data = _parse(done.stdout)
    return Load(
        requests=int(data["requests"]),
        errors=int(data["errors"]),
        seconds=data["seconds"],
        p50_ms=data["p50_ms"],
        p99_ms=data["p99_ms"],
        client_cpu_us=data.get("cpu_us"),
    )
