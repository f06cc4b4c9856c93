"""Real third-party Open Inference Protocol (v2) clients, unchanged, against a gateway: run by
tests/test_v2_clients.py with the python of a virtualenv holding `tritonclient[http]` and
`kserve` (not the project's environment: kserve pins protobuf < 7, psutil < 6, ...).

    python v2_client_driver.py PLAN.json  ->  JSON results on stdout

PLAN holds the gateway's URL and the input rows (half_plus_two's x values, iris rows).
Each result is what one call returned (arrays as {"array", "dtype", "shape"}) or the
exception it raised ({"error": class name, "status", "message"}); the test asserts on them.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from tritonclient.utils import InferenceServerException

Results = dict[str, Any]


def encode(value: Any) -> Any:
    """A client result as JSON the test can read back."""
    if isinstance(value, np.ndarray):
        return {"array": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def failure(error: Exception) -> dict[str, Any]:
    """An exception as the test reads it: class, HTTP status where the client has one."""
    status: Any = None
    message = str(error)
    if isinstance(error, InferenceServerException):
        status, message = error.status(), error.message()
    response = getattr(error, "response", None)
    if response is not None and hasattr(response, "status_code"):
        status = response.status_code
    return {"error": type(error).__name__, "status": status, "message": message}


def run(call: Callable[[], Any]) -> Any:
    """`{"value": ...}` or the failure of `call()`."""
    try:
        return {"value": encode(call())}
    except Exception as error:
        return failure(error)


async def arun(call: Callable[[], Awaitable[Any]]) -> Any:
    """`{"value": ...}` or the failure of `await call()`."""
    try:
        return {"value": encode(await call())}
    except Exception as error:
        return failure(error)


# ---- tritonclient.http -----------------------------------------------------------------


def _triton_infer(
    client: triton.InferenceServerClient,
    model: str,
    array: np.ndarray,
    datatype: str,
    *,
    binary_in: bool,
    outputs: list[tuple[str, bool]] | None,
    version: str = "",
    name: str = "x",
) -> dict[str, Any]:
    """One infer call; every output of the result by name, as numpy arrays."""
    infer_input = triton.InferInput(name, list(array.shape), datatype)
    infer_input.set_data_from_numpy(array, binary_data=binary_in)
    requested = (
        None
        if outputs is None
        else [triton.InferRequestedOutput(out, binary_data=binary) for out, binary in outputs]
    )
    result = client.infer(model, [infer_input], model_version=version, outputs=requested)
    response = result.get_response()
    return {
        "outputs": {out["name"]: result.as_numpy(out["name"]) for out in response["outputs"]},
        "binary": {
            out["name"]: "binary_data_size" in out.get("parameters", {})
            for out in response["outputs"]
        },
        "model_version": response.get("model_version"),
    }


def triton_calls(plan: dict[str, Any]) -> Results:
    """Every tritonclient.http call the test checks."""
    client = triton.InferenceServerClient(url=plan["url"].removeprefix("http://"))
    x = np.array(plan["x"], dtype=np.float32).reshape(-1, 1)
    rows = np.array(plan["iris_rows"], dtype=np.float64)
    results: Results = {
        "server_live": run(client.is_server_live),
        "server_ready": run(client.is_server_ready),
        "half_plus_two_ready": run(lambda: client.is_model_ready("half_plus_two")),
        "half_plus_two_123_ready": run(lambda: client.is_model_ready("half_plus_two", "123")),
        "half_plus_two_999_ready": run(lambda: client.is_model_ready("half_plus_two", "999")),
        "iris_ready": run(lambda: client.is_model_ready("iris")),
        "unknown_ready": run(lambda: client.is_model_ready("no_such_model")),
        "server_metadata": run(client.get_server_metadata),
        "half_plus_two_metadata": run(lambda: client.get_model_metadata("half_plus_two")),
        "iris_metadata": run(lambda: client.get_model_metadata("iris")),
        "unknown_metadata": run(lambda: client.get_model_metadata("no_such_model")),
    }
    for binary in (False, True):
        kind = "binary" if binary else "json"
        infer = functools.partial(_triton_infer, client, binary_in=binary)
        results[f"half_plus_two_{kind}"] = run(
            functools.partial(infer, "half_plus_two", x, "FP32", outputs=[("y", binary)])
        )
        results[f"iris_predict_{kind}"] = run(
            functools.partial(infer, "iris", rows, "FP64", outputs=[("predict", binary)])
        )
        results[f"iris_proba_{kind}"] = run(
            functools.partial(infer, "iris", rows, "FP64", outputs=[("predict_proba", binary)])
        )
    # No outputs named: tritonclient asks for every output as binary (binary_data_output).
    results["half_plus_two_default_outputs"] = run(
        lambda: _triton_infer(client, "half_plus_two", x, "FP32", binary_in=True, outputs=None)
    )
    results["half_plus_two_version_123"] = run(
        lambda: _triton_infer(
            client, "half_plus_two", x, "FP32", binary_in=False, outputs=None, version="123"
        )
    )
    results["iris_fp32_rows"] = run(
        lambda: _triton_infer(
            client, "iris", rows.astype(np.float32), "FP32", binary_in=True, outputs=None
        )
    )
    results["half_plus_two_fp16"] = run(
        lambda: _triton_infer(
            client, "half_plus_two", x.astype(np.float16), "FP16", binary_in=True, outputs=None
        )
    )
    results["half_plus_two_unknown_version"] = run(
        lambda: _triton_infer(
            client, "half_plus_two", x, "FP32", binary_in=False, outputs=None, version="999"
        )
    )
    results["unknown_model_infer"] = run(
        lambda: _triton_infer(client, "no_such_model", x, "FP32", binary_in=False, outputs=None)
    )
    client.close()
    return results


# ---- kserve's InferenceRESTClient --------------------------------------------------------


def _kserve_request(
    model: str,
    array: np.ndarray,
    datatype: str,
    *,
    binary_in: bool,
    outputs: list[tuple[str, bool]] | None = None,
) -> InferRequest:
    infer_input = InferInput(name="x", shape=list(array.shape), datatype=datatype)
    infer_input.set_data_from_numpy(array, binary_data=binary_in)
    requested = (
        None
        if outputs is None
        else [RequestedOutput(out, parameters={"binary_data": binary}) for out, binary in outputs]
    )
    return InferRequest(
        model_name=model,
        infer_inputs=[infer_input],
        request_id=f"kserve-{model}-{datatype}-{binary_in}",
        request_outputs=requested,
    )


async def kserve_calls(plan: dict[str, Any]) -> Results:
    """Every kserve.InferenceRESTClient call the test checks (it has no metadata calls)."""
    url = plan["url"]
    x = np.array(plan["x"], dtype=np.float32).reshape(-1, 1)
    rows = np.array(plan["iris_rows"], dtype=np.float64)
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))

    async def infer(request: InferRequest) -> dict[str, Any]:
        response = await client.infer(url, request, model_name=request.model_name)
        return {
            "outputs": {out.name: out.as_numpy() for out in response.outputs},
            "id_sent": request.id,
            "id": response.id,
        }

    results: Results = {
        "server_live": await arun(lambda: client.is_server_live(url)),
        "server_ready": await arun(lambda: client.is_server_ready(url)),
        "half_plus_two_ready": await arun(lambda: client.is_model_ready(url, "half_plus_two")),
        "iris_ready": await arun(lambda: client.is_model_ready(url, "iris")),
        "unknown_ready": await arun(lambda: client.is_model_ready(url, "no_such_model")),
    }
    for binary in (False, True):
        kind = "binary" if binary else "json"
        request = functools.partial(_kserve_request, binary_in=binary)
        # JSON: no outputs named (all come as JSON); binary: y asked for as binary data
        named: list[tuple[str, bool]] | None = [("y", True)] if binary else None
        proba = [("predict_proba", binary)]
        requests = {
            "half_plus_two": request("half_plus_two", x, "FP32", outputs=named),
            "iris_predict": request("iris", rows, "FP64"),
            "iris_proba": request("iris", rows, "FP64", outputs=proba),
        }
        for name, infer_request in requests.items():
            results[f"{name}_{kind}"] = await arun(functools.partial(infer, infer_request))
    fp16 = _kserve_request("half_plus_two", x.astype(np.float16), "FP16", binary_in=True)
    results["half_plus_two_fp16"] = await arun(functools.partial(infer, fp16))
    results["unknown_model_infer"] = await arun(
        lambda: infer(_kserve_request("no_such_model", x, "FP32", binary_in=False))
    )
    await client.close()
    return results


def main() -> None:
    """Run the plan in argv[1]; print the results as one JSON document."""
    with open(sys.argv[1]) as file:
        plan = json.load(file)
    versions = {
        name: importlib.metadata.version(name) for name in ("tritonclient", "kserve", "numpy")
    }
    results = {
        "versions": versions,
        "triton": triton_calls(plan),
        "kserve": asyncio.run(kserve_calls(plan)),
    }
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
