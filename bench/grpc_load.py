"""gRPC load driver: N concurrent grpc.aio callers of TF Serving's Predict for a fixed time.

The baseline for the gateway's TensorFlow path: the request the gateway sends for
``{"instances": [[1.0]]}`` to half_plus_two (``x`` DT_FLOAT [1, 1], packed in
``tensor_content``), straight to the backend, over one default channel, with a deadline
and nothing else: the plainest grpc.aio client. It imports TF Serving's protos without
TensorFlow (`clients.protos`). Prints one ``BENCH_JSON {...}`` line: requests, errors,
seconds, p50/p99, and ``cpu_us``, this process's CPU per call during the calls (the event
loop and gRPC's own threads; start-up excluded).

``python3 bench/grpc_load.py --target 127.0.0.1:8500 --model half_plus_two --concurrency 16``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from clients.protos import predict_pb2, prediction_service_pb2_grpc

DT_FLOAT = 1


def predict_request(model: str) -> predict_pb2.PredictRequest:
    """Predict x = [[1.0]] on `model`'s default signature, as the gateway builds it."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    tensor = request.inputs["x"]
    tensor.dtype = DT_FLOAT
    tensor.tensor_shape.dim.add(size=1)
    tensor.tensor_shape.dim.add(size=1)
    tensor.tensor_content = struct.pack("<f", 1.0)
    return request


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _caller(stub: Any, request: Any, stop_at: float, latencies: list[float]) -> int:
    errors = 0
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        try:
            await stub.Predict(request, timeout=30)
        except grpc.aio.AioRpcError:
            errors += 1
        else:
            latencies.append(time.perf_counter() - started)
    return errors


async def drive(target: str, model: str, concurrency: int, seconds: float) -> dict[str, float]:
    """Run the callers for `seconds`; return the summary."""
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_request(model)
        await stub.Predict(request, timeout=30)  # the first call sets up the stream
        latencies: list[float] = []
        cpu, started = _cpu_seconds(), time.perf_counter()
        stop_at = started + seconds
        callers = [_caller(stub, request, stop_at, latencies) for _ in range(concurrency)]
        errors = sum(await asyncio.gather(*callers))
        elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    requests = len(latencies) + errors
    return {
        "requests": requests,
        "errors": errors,
        "seconds": elapsed,
        "p50_ms": cuts[49] * 1e3,
        "p99_ms": cuts[98] * 1e3,
        "cpu_us": cpu / max(requests, 1) * 1e6,
    }


def main() -> None:
    """Parse the flags, drive, print the result line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--model", default="half_plus_two")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    result = asyncio.run(drive(args.target, args.model, args.concurrency, args.duration))
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
