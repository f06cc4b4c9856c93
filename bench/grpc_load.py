"""gRPC load driver: N concurrent grpc.aio callers of TF Serving's Predict for a fixed time.

The baseline for the gateway's TensorFlow path: the same request the gateway sends for
``{"instances": [[1.0]]}`` to half_plus_two (``x`` DT_FLOAT [1, 1]), straight to the backend,
over one channel. Prints one ``BENCH_JSON {...}`` line (requests, errors, seconds, p50/p99).

``python3 bench/grpc_load.py --target 127.0.0.1:8500 --model half_plus_two --concurrency 16``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import grpc
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def predict_request(model: str) -> predict_pb2.PredictRequest:
    """Predict x = [[1.0]] on `model`'s serving_default signature."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)] * 2
    )
    request.inputs["x"].CopyFrom(
        tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, float_val=[1.0])
    )
    return request


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
        latencies: list[float] = []
        started = time.perf_counter()
        stop_at = started + seconds
        callers = [_caller(stub, request, stop_at, latencies) for _ in range(concurrency)]
        errors = sum(await asyncio.gather(*callers))
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies) + errors,
        "errors": errors,
        "seconds": elapsed,
        "p50_ms": cuts[49] * 1e3,
        "p99_ms": cuts[98] * 1e3,
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
