"""/v1 predict and /v2 infer agree: the same inputs give the same values, for every signature
of half_plus_two (TF, over gRPC to the session's separate backend; the tf.Example ones
too, as b64 on v1 and BYTES binary data on v2) and of iris (scikit-learn, in-process).

v1 writes TF Serving's number text; v2 writes shortest round-trip text (or raw bytes,
when asked for as binary data). Both are parsed and compared as the output's dtype
(float32, float64, int64) with exact, bit-for-bit equality. Inputs are float32 (or
float64) values written exactly, so both endpoints read the same numbers.
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from clients.dtypes import BY_V2_NAME
from tests.v2_gateway import HALF_PLUS_TWO_X, IRIS_ROWS, iris_estimator

HEADER = "Inference-Header-Content-Length"
IRIS_SIGNATURES = (
    "serving_default",
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
)
TENSOR_SIGNATURES = ("serving_default", "regress_x2_to_y3")  # half_plus_two's float inputs
EXAMPLE_SIGNATURES = ("classify_x_to_y", "regress_x_to_y", "regress_x_to_y2")  # tf.Example


def float32_inputs() -> np.ndarray:
    """half_plus_two inputs: the shared ones, float32 extremes and random magnitudes."""
    rng = np.random.default_rng(11)
    extremes = [0.0, -0.0, 1e-45, -1.17549435e-38, 3.4028235e38, -1e-7, 123456.789]
    random = rng.standard_normal(24) * 10.0 ** rng.integers(-30, 30, 24)
    return np.array([*HALF_PLUS_TWO_X, *extremes, *random], dtype=np.float32)


def iris_rows() -> np.ndarray:
    """Iris rows: the shared ones and random ones about the flowers' range."""
    rng = np.random.default_rng(12)
    return np.vstack([np.array(IRIS_ROWS), rng.uniform(0.0, 8.0, (12, 4))]).astype(np.float64)


def v1_predict(v2_http: httpx.Client, model: str, body: dict[str, Any]) -> np.ndarray:
    """/v1 predict's `predictions`, as parsed JSON (TF Serving's number text)."""
    response = v2_http.post(f"/v1/models/{model}:predict", content=orjson.dumps(body))
    assert response.status_code == 200, response.text
    return np.array(response.json()["predictions"])


def v2_infer(
    v2_http: httpx.Client, model: str, document: dict[str, Any], binary: bytes = b""
) -> dict[str, np.ndarray]:
    """/v2 infer's outputs by name, each as its datatype (from JSON, or binary data)."""
    json_part = orjson.dumps(document)
    headers = {HEADER: str(len(json_part))} if binary else {}
    response = v2_http.post(
        f"/v2/models/{model}/infer", content=json_part + binary, headers=headers
    )
    assert response.status_code == 200, response.text
    length = int(response.headers.get(HEADER, len(response.content)))
    outputs = {}
    offset = length
    for output in orjson.loads(response.content[:length])["outputs"]:
        dtype = BY_V2_NAME[output["datatype"]].numpy
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            values = np.array(output["data"], dtype=dtype)
        else:
            values = np.frombuffer(
                response.content[offset : offset + size], dtype.newbyteorder("<")
            )
            offset += size
        outputs[output["name"]] = values.astype(dtype).reshape(output["shape"])
    assert offset == len(response.content), "binary bytes left over in the response"
    return outputs


def assert_agree(v1: np.ndarray, v2: np.ndarray) -> None:
    """v1's parsed numbers, read as v2's dtype, equal v2's bit for bit."""
    as_v1 = v1.astype(v2.dtype)
    assert as_v1.shape == v2.shape, (as_v1.shape, v2.shape)
    assert v2.size > 0
    assert as_v1.tobytes() == v2.tobytes(), (as_v1, v2)


def _example(x: float) -> bytes:
    """A serialized tf.Example with float feature x (and x2, for regress_x2_to_y3's parse)."""
    import tensorflow as tf

    feature = {
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[x])),
        "x2": tf.train.Feature(float_list=tf.train.FloatList(value=[x])),
    }
    return bytes(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


@pytest.mark.parametrize("binary_output", [False, True], ids=["json", "binary-output"])
@pytest.mark.parametrize("signature", TENSOR_SIGNATURES)
def test_half_plus_two_tensor_signatures_agree(
    v2_http: httpx.Client, signature: str, binary_output: bool
) -> None:
    x = float32_inputs()
    instances = [[float(value)] for value in x]
    v1 = v1_predict(v2_http, "half_plus_two", {"signature_name": signature, "instances": instances})
    v2 = v2_infer(
        v2_http,
        "half_plus_two",
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [len(x), 1], "data": instances}],
            "parameters": {"signature_name": signature, "binary_data_output": binary_output},
        },
    )
    (output,) = v2.values()
    assert_agree(v1, output)
    if signature == "serving_default":  # and both are right
        assert output.tobytes() == (x * np.float32(0.5) + np.float32(2)).reshape(-1, 1).tobytes()


@pytest.mark.parametrize("signature", EXAMPLE_SIGNATURES)
def test_half_plus_two_tf_example_signatures_agree(v2_http: httpx.Client, signature: str) -> None:
    """Serialized tf.Examples: b64 strings on v1, BYTES binary data on v2."""
    examples = [_example(float(value)) for value in float32_inputs()[:12]]
    v1 = v1_predict(
        v2_http,
        "half_plus_two",
        {
            "signature_name": signature,
            "instances": [{"b64": base64.b64encode(example).decode()} for example in examples],
        },
    )
    binary = b"".join(struct.pack("<I", len(example)) + example for example in examples)
    v2 = v2_infer(
        v2_http,
        "half_plus_two",
        {
            "inputs": [
                {
                    "name": "inputs",
                    "datatype": "BYTES",
                    "shape": [len(examples)],
                    "parameters": {"binary_data_size": len(binary)},
                }
            ],
            "parameters": {"signature_name": signature},
        },
        binary,
    )
    (output,) = v2.values()
    assert_agree(v1, output)


@pytest.mark.parametrize("binary_input", [False, True], ids=["json", "binary-input"])
@pytest.mark.parametrize("signature", IRIS_SIGNATURES)
def test_iris_signatures_agree(
    v2_http: httpx.Client, sklearn_models_dir: Path, signature: str, binary_input: bool
) -> None:
    rows = iris_rows()
    v1 = v1_predict(v2_http, "iris", {"signature_name": signature, "instances": rows.tolist()})
    tensor: dict[str, Any] = {"name": "inputs", "datatype": "FP64", "shape": list(rows.shape)}
    binary = b""
    if binary_input:
        binary = rows.astype("<f8").tobytes()
        tensor["parameters"] = {"binary_data_size": len(binary)}
    else:
        tensor["data"] = rows.tolist()
    document = {"inputs": [tensor], "parameters": {"signature_name": signature}}
    (output,) = v2_infer(v2_http, "iris", document, binary).values()
    assert_agree(v1, output)
    method = "predict" if signature == "serving_default" else signature
    expected = getattr(iris_estimator(sklearn_models_dir), method)(rows)  # and both are right
    assert output.tobytes() == expected.astype(output.dtype).tobytes()


@pytest.mark.parametrize(
    ("model", "compared"),
    [("iris", IRIS_SIGNATURES), ("half_plus_two", TENSOR_SIGNATURES + EXAMPLE_SIGNATURES)],
)
def test_every_signature_is_compared(
    v2_http: httpx.Client, model: str, compared: tuple[str, ...]
) -> None:
    """The lists above are the models': a signature added to one must be compared too."""
    response = v2_http.get(f"/v1/models/{model}/metadata")
    assert response.status_code == 200, response.text
    signatures = response.json()["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == set(compared)
