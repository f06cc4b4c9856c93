"""In-process cost of the gateway's TensorFlow path, layer by layer (no HTTP server, no wrk).

Run from the repository root against a running TF-Serving-compatible backend serving
half_plus_two (the gateway's embedded one, or ``python3 -m tfserving_compat``)::

    python3 bench/tf_inprocess.py --target 127.0.0.1:8500 [--concurrency 16] [--slices 20]
    python3 bench/tf_inprocess.py --target 127.0.0.1:8500 --instant   # no gRPC at all

On uvloop, as the gateway runs, `--concurrency` tasks call one layer back to back for a
`--slice` of a second, then the next layer, `--slices` times over, so every layer sees the
same background load. For each it prints calls/s and the CPU of this whole process per call
(event loop plus gRPC's own threads); one layer's cost over the one above it in the list is
what that layer adds:

- ``grpc``: ``stub.Predict`` on the gateway's own channel (its options), a prebuilt
  request, a deadline, no metadata: the plain grpc.aio floor;
- ``backend``: ``TfServingBackend.predict`` (builds the request, deadline and request-id
  metadata, the call, the response tensors as numpy);
- ``dataplane``: ``DataPlane.resolve_signature`` + ``predict`` (cached metadata, limits);
- ``v1``: the /v1/ handler on the request body (JSON decode, tensors, JSON encode);
- ``asgi``: the whole ASGI app (observability, edge, routing) with in-memory receive/send.

``--instant`` replaces the stub's Predict by one that answers at once (after one trip
through the event loop), so the layers show the gateway's own Python cost without gRPC's
and without a busy backend beside it. What the HTTP server (uvicorn, httptools) adds on top
is the gateway's CPU per request under wrk minus ``asgi`` (`bench/run.py --servers
gateway-tf`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import uvloop

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from clients.context import CALL_CONTEXT, CallContext  # noqa: E402
from clients.protos import predict_pb2  # noqa: E402
from clients.tf_serving import TfServingBackend  # noqa: E402
from clients.types import ModelSpec  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.dataplane import DataPlane  # noqa: E402
from gateway.settings import load_settings  # noqa: E402

MODEL = "half_plus_two"
BODY = b'{"instances": [[1.0]]}'
PATH = f"/v1/models/{MODEL}:predict"
Call = Callable[[], Awaitable[Any]]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _drive(call: Call, concurrency: int, seconds: float) -> tuple[int, float, float]:
    """Calls made, seconds and CPU seconds of `concurrency` tasks calling `call` back to back."""

    async def worker(stop_at: float) -> int:
        done = 0
        while time.perf_counter() < stop_at:
            await call()
            done += 1
        return done

    cpu, started = _cpu_seconds(), time.perf_counter()
    counts = await asyncio.gather(*(worker(started + seconds) for _ in range(concurrency)))
    return sum(counts), time.perf_counter() - started, _cpu_seconds() - cpu


class _Asgi:
    """One POST through the ASGI app with in-memory receive/send."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers = [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ]

    async def __call__(self) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": PATH,
            "raw_path": PATH.encode(),
            "query_string": b"",
            "headers": self.headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8000),
        }
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        if status != 200:
            raise RuntimeError(f"status {status}")


class _InstantPredict:
    """A stand-in for the channel's PredictionService stub whose Predict answers at once
    (``y = [[2.5]]``, as half_plus_two would) after one trip through the event loop; the
    other methods go to the real stub. With it the layers show the gateway's own cost."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub
        self._response = predict_pb2.PredictResponse()
        output = self._response.outputs["y"]
        output.dtype = 1  # DT_FLOAT
        output.tensor_shape.dim.add(size=1)
        output.tensor_shape.dim.add(size=1)
        output.tensor_content = np.array([2.5], dtype=np.float32).tobytes()
        self._response.model_spec.name = MODEL
        self._response.model_spec.version.value = 1

    async def Predict(self, request: Any, **options: Any) -> Any:  # noqa: N802 (gRPC's name)
        """Answer `request` without a backend: serialize it and parse the answer, as gRPC does."""
        request.SerializeToString()
        await asyncio.sleep(0)
        return predict_pb2.PredictResponse.FromString(self._response.SerializeToString())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)


def _layers(app: Any, instant: bool) -> dict[str, Call]:
    dataplane: DataPlane = app.state.dataplane
    entry = dataplane.registry.find(MODEL)
    assert entry is not None and isinstance(entry.backend, TfServingBackend)
    backend = entry.backend
    stub = backend._channel.predictions
    assert stub is not None
    if instant:
        stub = backend._channel.predictions = _InstantPredict(stub)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "serving_default"
    tensor = request.inputs["x"]
    tensor.dtype = 1  # DT_FLOAT
    tensor.tensor_shape.dim.add(size=1)
    tensor.tensor_shape.dim.add(size=1)
    tensor.float_val.append(1.0)
    spec = ModelSpec(MODEL)
    inputs = {"x": np.array([[1.0]], dtype=np.float32)}

    async def grpc_call() -> None:
        await stub.Predict(request, timeout=10.0)

    async def backend_call() -> None:
        await backend.predict(spec, inputs)

    async def dataplane_call() -> None:
        resolved = await dataplane.resolve_signature(spec)
        await dataplane.predict(resolved, inputs, spec)

    from routers import tfserving_v1
    from routers.request_record import RequestRecord
    from routers.v1_paths import parse_v1_path

    route = parse_v1_path("POST", PATH)
    limits = app.state.json_limits

    async def v1_call() -> None:
        await tfserving_v1._VERBS["predict"](dataplane, route, BODY, RequestRecord(), limits)

    return {
        "grpc": grpc_call,
        "backend": backend_call,
        "dataplane": dataplane_call,
        "v1": v1_call,
        "asgi": _Asgi(app),
    }


async def _main(args: argparse.Namespace) -> None:
    models = Path(args.work) / "models"  # the backend serves it; the gateway only names it
    settings = load_settings(
        None,
        tf_serving_target=args.target,
        access_log=False,
        log_level="warning",
        models=[{"name": MODEL, "platform": "tensorflow", "base_path": str(models / MODEL)}],
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        wanted = args.layers.split(",")
        layers = {k: v for k, v in _layers(app, args.instant).items() if k in wanted}
        token = CALL_CONTEXT.set(CallContext("bench-request-id", None))
        try:
            for call in layers.values():  # warm up every layer
                await _drive(call, args.concurrency, 1.0)
            totals = {name: [0, 0.0, 0.0] for name in layers}
            for _ in range(args.slices):
                for name, call in layers.items():
                    for index, value in enumerate(await _drive(call, args.concurrency, args.slice)):
                        totals[name][index] += value
        finally:
            CALL_CONTEXT.reset(token)
    print(
        f"{args.slices} slices of {args.slice:g} s per layer, interleaved; "
        f"concurrency {args.concurrency}\n"
    )
    print("| layer | calls/s | CPU µs/call | added by the layer |\n|---|--:|--:|--:|")
    previous = None
    for name, (calls, seconds, cpu) in totals.items():
        per_call = cpu / calls * 1e6
        added = "" if previous is None else f"{per_call - previous:+.0f}"
        previous = per_call
        print(f"| {name} | {calls / seconds:,.0f} | {per_call:.0f} | {added} |")


def main() -> None:
    """Parse the flags and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="host:port of the TF backend")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--slice", type=float, default=1.0, help="seconds per slice")
    parser.add_argument("--slices", type=int, default=20, help="slices per layer")
    parser.add_argument(
        "--instant", action="store_true", help="Predict answers at once: no gRPC, no backend"
    )
    parser.add_argument("--layers", default="grpc,backend,dataplane,v1,asgi")
    parser.add_argument("--work", default=str(REPO / "bench" / ".work"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
