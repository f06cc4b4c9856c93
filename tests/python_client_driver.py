"""Every call of the Python client (client/), sync and async, run by tests/test_python_client.py
with the python of a fresh virtualenv that has only the client, httpx and numpy.

    python python_client_driver.py PLAN.json  ->  JSON results on stdout

PLAN holds the gateway's URL, the fake server's URL, a closed port and the input rows. Each
result is what a call returned (arrays as {"array", "dtype", "shape"}) or the exception it
raised ({"error": class name, "status", "message", "request_id", ...}); the test asserts on them.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np
import tfs_gateway_client as tgc
from tfs_gateway_client import AsyncClient, Client, RetryPolicy


def encode(value: Any) -> Any:
    """A client result as JSON the test can read back (bytes as {"bytes": base64})."""
    if isinstance(value, np.ndarray):
        return {"array": encode(value.tolist()), "dtype": str(value.dtype), "shape": value.shape}
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode()}
    if isinstance(value, tgc.ModelMetadata):
        return {
            "name": value.name,
            "version": value.version,
            "signatures": {
                name: {
                    "method_name": sig.method_name,
                    "inputs": {k: [v.dtype, v.shape] for k, v in sig.inputs.items()},
                    "outputs": {k: [v.dtype, v.shape] for k, v in sig.outputs.items()},
                }
                for name, sig in value.signatures.items()
            },
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def failure(error: tgc.GatewayError, started: float) -> dict[str, Any]:
    return {
        "error": type(error).__name__,
        "is_gateway_error": isinstance(error, tgc.GatewayError),
        "status": error.status,
        "message": error.message,
        "request_id": error.request_id,
        "retry_after": error.retry_after,
        "elapsed": time.monotonic() - started,
    }


def run(call: Callable[[], Any]) -> Any:
    started = time.monotonic()
    try:
        return {"value": encode(call()), "elapsed": time.monotonic() - started}
    except tgc.GatewayError as error:
        return failure(error, started)


async def arun(call: Callable[[], Awaitable[Any]]) -> Any:
    started = time.monotonic()
    try:
        return {"value": encode(await call()), "elapsed": time.monotonic() - started}
    except tgc.GatewayError as error:
        return failure(error, started)


def gateway_calls(plan: dict[str, Any]) -> dict[str, Callable[[Any], Any]]:
    """name -> f(client): the same calls for the sync client and (awaited) the async one."""
    iris_rows = np.asarray(plan["iris_rows"])
    iris_examples = [
        dict(zip(plan["iris_features"], row, strict=True)) for row in plan["iris_rows"]
    ]
    diabetes_row = plan["diabetes_row"]
    return {
        "hpt_rows": lambda c: c.predict("half_plus_two", [1.0, 2.0, 5.0]),
        "hpt_rows_float32_array": lambda c: c.predict(
            "half_plus_two", np.array([[1.0], [2.0], [-4.0]], dtype=np.float32)
        ),
        "hpt_rows_named": lambda c: c.predict("half_plus_two", {"x": np.array([3.0, 7.0])}),
        "hpt_columnar": lambda c: c.predict_columnar("half_plus_two", {"x": [[1.0], [2.0]]}),
        "hpt_columnar_plain": lambda c: c.predict_columnar("half_plus_two", np.array([10.0])),
        "hpt_version": lambda c: c.predict("half_plus_two", [1.0], version=1),
        "hpt_label": lambda c: c.predict("half_plus_two", [1.0], label="stable"),
        "hpt_nan": lambda c: c.predict("half_plus_two", [float("nan"), float("inf")]),
        "hpt_classify": lambda c: c.classify(
            "half_plus_two", [{"x": 2.0}, {"x": np.float32(20.0)}], signature_name="classify_x_to_y"
        ),
        "hpt_regress": lambda c: c.regress(
            "half_plus_two", [{"x": 80.0}, {"x": np.array([0.0])}], signature_name="regress_x_to_y"
        ),
        "hpt_status": lambda c: c.status("half_plus_two"),
        "hpt_status_version": lambda c: c.status("half_plus_two", version=1),
        "hpt_metadata": lambda c: c.metadata("half_plus_two"),
        "hpt_metadata_label": lambda c: c.metadata("half_plus_two", label="stable"),
        "iris_predict": lambda c: c.predict("iris", iris_rows),
        "iris_proba": lambda c: c.predict("iris", iris_rows, signature_name="predict_proba"),
        "iris_classify": lambda c: c.classify("iris", iris_examples),
        "iris_metadata": lambda c: c.metadata("iris"),
        "diabetes_regress": lambda c: c.regress("diabetes", [{"inputs": diabetes_row}]),
        "diabetes_predict": lambda c: c.predict("diabetes", [diabetes_row]),
        "digits": lambda c: c.predict("digits", np.asarray(plan["digits_rows"], np.float32)),
        "echo_rows": lambda c: c.predict("echo", [b"\x00\xff binary", b"abc", "text"]),
        "echo_columnar": lambda c: c.predict_columnar(
            "echo", {"text": np.array([b"\x80\x81", b""], dtype="S")}
        ),
        "v2_hpt": lambda c: c.infer("half_plus_two", {"x": np.array([[1.0], [2.0]], np.float32)}),
        "v2_hpt_label": lambda c: c.infer(
            "half_plus_two", {"x": np.array([[1.0]], np.float32)}, version="stable"
        ),
        "v2_iris_proba": lambda c: c.infer(
            "iris", {"input-0": iris_rows}, outputs=["predict_proba"]
        ),
        "v2_unknown_model": lambda c: c.infer("nope", {"x": np.array([1.0])}),
        "list_models": lambda c: c.list_models(),
        "unknown_model": lambda c: c.predict("nope", [1.0], request_id="client-test-id-1"),
        "unknown_model_status": lambda c: c.status("nope"),
        "wrong_type": lambda c: c.predict("half_plus_two", ["a"]),
        "unknown_label": lambda c: c.metadata("half_plus_two", label="nolabel"),
        "unknown_signature": lambda c: c.predict("iris", iris_rows, signature_name="nope"),
    }


def fake_calls(tag: str) -> dict[str, Callable[[Any, Any, Any], Any]]:
    """name -> f(client, client_without_retries, client_retrying_once) on the fake server."""
    return {
        "flaky": lambda c, _n, _o: c.predict(f"flaky-{tag}", [1.0], timeout=20),
        "busy": lambda _c, _n, once: once.predict(f"busy-{tag}", [1.0]),
        "later": lambda c, _n, _o: c.predict(f"later-{tag}", [1.0]),
        "slow": lambda _c, no_retry, _o: no_retry.predict(f"slow-{tag}", [1.0], timeout=0.5),
        "deadline": lambda c, _n, _o: c.status(f"deadline-{tag}", timeout=2.5),
    }


def sync_part(plan: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    seen: list[tuple[str | None, str | None]] = []

    def remember(response: httpx.Response) -> None:
        seen.append(
            (response.request.headers.get("X-Request-ID"), response.headers.get("X-Request-ID"))
        )

    with Client(plan["gateway"]) as client:
        for name, call in gateway_calls(plan).items():
            results[name] = run(lambda call=call: call(client))
    with Client(
        plan["gateway"], http_client=httpx.Client(event_hooks={"response": [remember]})
    ) as c:
        results["request_id_given"] = run(
            lambda: c.predict("iris", plan["iris_rows"][:1], request_id="client-test-id-2")
        )
        results["request_id_generated"] = run(lambda: c.status("iris"))
    results["request_id_seen"] = seen
    with (
        Client(plan["fake"]) as client,
        Client(plan["fake"], retry=tgc.NO_RETRIES) as no_retry,
        Client(plan["fake"], retry=RetryPolicy(max_retries=1)) as once,
    ):
        for name, call in fake_calls("sync").items():
            results[f"fake_{name}"] = run(lambda call=call: call(client, no_retry, once))
    with Client(plan["closed"], connect_retries=0) as client:
        results["connection_refused"] = run(lambda: client.status("half_plus_two"))
    return results


async def async_part(plan: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with AsyncClient(plan["gateway"]) as client:
        for name, call in gateway_calls(plan).items():
            results[name] = await arun(lambda call=call: call(client))
        together = await asyncio.gather(
            *(client.predict("half_plus_two", [float(x)]) for x in range(20)),
            client.predict("iris", plan["iris_rows"]),
        )
        results["gathered"] = encode(together)
    async with (
        AsyncClient(plan["fake"]) as client,
        AsyncClient(plan["fake"], retry=tgc.NO_RETRIES) as no_retry,
        AsyncClient(plan["fake"], retry=RetryPolicy(max_retries=1)) as once,
    ):
        for name, call in fake_calls("async").items():
            results[f"fake_{name}"] = await arun(lambda call=call: call(client, no_retry, once))
    async with AsyncClient(plan["closed"], connect_retries=0) as client:
        results["connection_refused"] = await arun(lambda: client.status("half_plus_two"))
    return results


def main() -> None:
    with open(sys.argv[1]) as file:
        plan = json.load(file)
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        tensorflow_importable = False
    else:
        tensorflow_importable = True
    output = {
        "tensorflow_importable": tensorflow_importable,
        "modules": sorted(
            name for name in sys.modules if name.split(".")[0] in ("tensorflow", "grpc", "google")
        ),
        "version": tgc.__version__,
        "sync": sync_part(plan),
        "async": asyncio.run(async_part(plan)),
    }
    json.dump(output, sys.stdout, allow_nan=True)


if __name__ == "__main__":
    main()
