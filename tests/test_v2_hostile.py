"""Hostile Open Inference Protocol (v2) requests, over real HTTP to a running gateway.

Each one gets a 4xx whose body is `{"error": "<message>"}` as JSON, the message saying what
to fix (the test checks the words that do), nothing internal leaks, and the gateway
goes on serving: a good infer after every case must still give y = x/2 + 2.
The gateway is tests/v2_gateway.py's: half_plus_two (TF, over gRPC to the session's
separate backend; its `classify_x_to_y` signature takes a BYTES input) and iris.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import httpx
import numpy as np
import orjson
import pytest

from tests.conftest import LEAK_MARKERS, GatewayProcess

INFER = "/v2/models/half_plus_two/infer"
HEADER = "Inference-Header-Content-Length"
X = [1.0, 2.0, 3.0]


def x_input(**changes: object) -> dict[str, object]:
    """half_plus_two's input x = [1, 2, 3] as JSON data, with `changes` applied."""
    tensor: dict[str, object] = {"name": "x", "datatype": "FP32", "shape": [3, 1], "data": X}
    tensor.update(changes)
    return {key: value for key, value in tensor.items() if value is not None}


def binary_body(
    inputs: list[dict[str, object]], binary: bytes, **document: object
) -> tuple[bytes, dict[str, str]]:
    """JSON header + `binary`, and the headers that say where the JSON ends."""
    header = orjson.dumps({"inputs": inputs, **document})
    return header + binary, {HEADER: str(len(header)), "content-type": "application/octet-stream"}


def length_prefixed(*elements: bytes) -> bytes:
    """BYTES elements as the binary extension writes them: 4-byte LE length, then bytes."""
    return b"".join(struct.pack("<I", len(element)) + element for element in elements)


@dataclass(frozen=True)
class Hostile:
    """One hostile request and the answer it must get."""

    id: str
    status: int
    words: tuple[str, ...]  # each must be in the error message
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    path: str = INFER
    method: str = "POST"


def json_case(id: str, status: int, words: tuple[str, ...], document: object) -> Hostile:
    """A case whose body is `document` as JSON."""
    return Hostile(id, status, words, orjson.dumps(document))


def binary_case(
    id: str,
    words: tuple[str, ...],
    inputs: list[dict[str, object]],
    binary: bytes,
    **document: object,
) -> Hostile:
    """A 400 case with binary tensor data after the JSON header."""
    body, headers = binary_body(inputs, binary, **document)
    return Hostile(id, 400, words, body, headers)


FP32_BYTES = np.array(X, dtype="<f4").tobytes()  # 12 bytes
CLASSIFY = {"signature_name": "classify_x_to_y"}


def bytes_input(size: int, count: int = 1) -> dict[str, object]:
    """The classify signature's BYTES input as binary data of `size` bytes."""
    return {
        "name": "inputs",
        "datatype": "BYTES",
        "shape": [count],
        "parameters": {"binary_data_size": size},
    }


def binary_x(size: object) -> dict[str, object]:
    """x as binary data with `binary_data_size` = `size`."""
    return x_input(data=None, parameters={"binary_data_size": size})


CASES = [
    # ---- tensors that do not fit ----
    json_case(
        "shape-data-mismatch",
        400,
        ("Input 'x'", "shape [3, 1] holds 3 elements", "'data' has 2"),
        {"inputs": [x_input(data=[1.0, 2.0])]},
    ),
    json_case(
        "shape-misfits-signature",
        400,
        ("Input 'x' has shape [1, 3]", "expects [-1, 1]"),
        {"inputs": [x_input(shape=[1, 3])]},
    ),
    json_case(
        "wrong-datatype",
        400,
        ("Input 'x' is INT32", "the model expects FP32"),
        {"inputs": [x_input(datatype="INT32", data=[1, 2, 3])]},
    ),
    json_case(
        "fp16-to-fp32-model",
        400,
        ("Input 'x' is FP16", "the model expects FP32"),
        {"inputs": [x_input(datatype="FP16")]},
    ),
    json_case(
        "unknown-datatype",
        400,
        ("unknown datatype 'FLOAT32'", "expected FP32"),
        {"inputs": [x_input(datatype="FLOAT32")]},
    ),
    json_case(
        "missing-datatype",
        400,
        ("unknown datatype None", "expected FP32"),
        {"inputs": [x_input(datatype=None)]},
    ),
    json_case(
        "text-for-fp32",
        400,
        ('"one"', "is not of expected type: float"),
        {"inputs": [x_input(data=["one", "two", "three"])]},
    ),
    json_case(
        "negative-shape",
        400,
        ("'shape' must be a list of sizes >= 0",),
        {"inputs": [x_input(shape=[-3, 1])]},
    ),
    json_case(
        "huge-shape",
        400,
        ("elements in input 'x'",),
        {"inputs": [x_input(shape=[2**40, 2**20])]},
    ),
    json_case(
        "no-data", 400, ("neither 'data' nor binary_data_size",), {"inputs": [x_input(data=None)]}
    ),
    # ---- binary tensor data ----
    binary_case(
        "binary-size-past-the-body",
        ("binary_data_size 16", "within the 12 binary bytes left"),
        [binary_x(16)],
        FP32_BYTES,
    ),
    binary_case(
        "binary-size-negative",
        ("binary_data_size -4", "whole number of bytes"),
        [binary_x(-4)],
        FP32_BYTES,
    ),
    binary_case(
        "binary-size-not-integer",
        ("binary_data_size 4.5", "whole number of bytes"),
        [binary_x(4.5)],
        FP32_BYTES,
    ),
    binary_case(
        "binary-size-a-string",
        ("binary_data_size '12'", "whole number of bytes"),
        [binary_x("12")],
        FP32_BYTES,
    ),
    binary_case(
        "binary-size-a-bool",
        ("binary_data_size True", "whole number of bytes"),
        [binary_x(True)],
        FP32_BYTES,
    ),
    binary_case(
        "binary-size-huge",
        ("binary_data_size 18446744073709551615", "within the 12 binary bytes left"),
        [binary_x(2**64 - 1)],
        FP32_BYTES,
    ),
    binary_case(
        "binary-size-misfits-shape",
        ("shape [3, 1] of FP32 needs 12 bytes", "binary_data_size is 8"),
        [binary_x(8)],
        FP32_BYTES[:8],
    ),
    binary_case(
        "leftover-binary-bytes",
        ("4 binary bytes that no input's binary_data_size accounts for",),
        [binary_x(12)],
        FP32_BYTES + b"\0\0\0\0",
    ),
    binary_case(
        "binary-bytes-but-json-data",
        ("12 binary bytes that no input's binary_data_size accounts for",),
        [x_input()],
        FP32_BYTES,
    ),
    Hostile(
        "header-length-past-the-body",
        400,
        ("Inference-Header-Content-Length is 100000", "the body has only"),
        orjson.dumps({"inputs": [x_input()]}),
        {HEADER: "100000"},
    ),
    *(
        Hostile(
            f"header-length-{name}",
            400,
            ("Invalid Inference-Header-Content-Length", "byte length of the JSON part"),
            orjson.dumps({"inputs": [x_input()]}),
            {HEADER: value},
        )
        for name, value in (("text", "abc"), ("negative", "-5"), ("float", "1e3"), ("empty", ""))
    ),
    Hostile(
        "header-length-cuts-the-json",
        400,
        (
            "The JSON header (the first 10 bytes",
            "Inference-Header-Content-Length",
            "JSON Parse error",
        ),
        orjson.dumps({"inputs": [x_input()]}),
        {HEADER: "10"},
    ),
    binary_case(
        "bytes-length-prefix-cut",
        ("Input 'inputs'", "BYTES element's length is cut short"),
        [bytes_input(8, count=2)],
        length_prefixed(b"ab") + b"\x01\x00",  # one element, then 2 of a length's 4 bytes
        parameters=CLASSIFY,
    ),
    binary_case(
        "bytes-length-prefix-only-two-bytes",
        ("Input 'inputs'", "BYTES element's length is cut short"),
        [bytes_input(2)],
        b"\x05\x00",
        parameters=CLASSIFY,
    ),
    binary_case(
        "bytes-element-past-its-data",
        ("Input 'inputs'", "BYTES element of 100 bytes passes the end of its data"),
        [bytes_input(7)],
        struct.pack("<I", 100) + b"abc",
        parameters=CLASSIFY,
    ),
    binary_case(
        "bytes-element-count-misfits-shape",
        ("Input 'inputs'", "its shape holds 3 elements, the binary data has 2"),
        [bytes_input(len(length_prefixed(b"a", b"b")), count=3)],
        length_prefixed(b"a", b"b"),
        parameters=CLASSIFY,
    ),
    # ---- names ----
    json_case(
        "unknown-input-name-beside-x",
        400,
        ("takes inputs ['x']", "the request has ['x', 'bogus']"),
        {"inputs": [x_input(), x_input(name="bogus")]},
    ),
    json_case(
        "same-input-twice",
        400,
        ("takes inputs ['x']", "the request has ['x', 'x']"),
        {"inputs": [x_input(), x_input()]},
    ),
    json_case(
        "unknown-output-name",
        400,
        ("Unknown output 'z'", "it has y"),
        {"inputs": [x_input()], "outputs": [{"name": "z"}]},
    ),
    json_case(
        "output-without-name",
        400,
        ("needs a string 'name'",),
        {"inputs": [x_input()], "outputs": [{"parameters": {}}]},
    ),
    json_case(
        "unknown-signature",
        400,
        ("Unknown signature_name 'nope'", "serving_default"),
        {"inputs": [x_input()], "parameters": {"signature_name": "nope"}},
    ),
    Hostile(
        "unknown-model",
        404,
        ("no_such_model",),
        orjson.dumps({"inputs": [x_input()]}),
        path="/v2/models/no_such_model/infer",
    ),
    Hostile(
        "unknown-version",
        404,
        ("half_plus_two", "999"),
        orjson.dumps({"inputs": [x_input()]}),
        path="/v2/models/half_plus_two/versions/999/infer",
    ),
    Hostile(
        "unknown-version-metadata", 404, ("999",), path="/v2/models/iris/versions/999", method="GET"
    ),
    Hostile(
        "unknown-version-ready",
        404,
        ("version 999",),
        path="/v2/models/half_plus_two/versions/999/ready",
        method="GET",
    ),
    Hostile(
        "unknown-model-metadata",
        404,
        ("no_such_model",),
        path="/v2/models/no_such_model",
        method="GET",
    ),
    Hostile("unknown-v2-path", 404, ("/v2/nope",), path="/v2/nope", method="GET"),
    # ---- the document ----
    *(
        json_case(f"non-object-{name}", 400, ("Is not object",), document)
        for name, document in (("list", [1]), ("string", "x"), ("null", None), ("number", 3))
    ),
    json_case("missing-inputs", 400, ("'inputs' must be a non-empty list",), {"id": "a"}),
    json_case("empty-inputs", 400, ("'inputs' must be a non-empty list",), {"inputs": []}),
    json_case("inputs-an-object", 400, ("'inputs' must be a non-empty list",), {"inputs": {}}),
    json_case("input-not-an-object", 400, ("string 'name'",), {"inputs": [3]}),
    json_case(
        "parameters-not-an-object",
        400,
        ("'parameters' must be a JSON object",),
        {"inputs": [x_input()], "parameters": [1]},
    ),
    json_case("id-not-a-string", 400, ("'id' must be a string",), {"inputs": [x_input()], "id": 7}),
    Hostile("empty-body", 400, ("empty",), b""),
    Hostile("invalid-json", 400, ("JSON Parse error", "offset: 12"), b'{"inputs": [}'),
    Hostile("invalid-utf8-input-name", 400, ("'shape'",), b'{"inputs": [{"name": "\xff"}]}'),
    Hostile(
        "invalid-utf8-id",
        400,
        ("'id' must be",),
        b'{"id": "\xff", "inputs": [' + orjson.dumps(x_input()) + b"]}",
    ),
    Hostile(
        "invalid-utf8-output-name",
        400,
        ("Unknown output '\\xff'",),  # invalid bytes quoted as \xff text, as on /v1
        b'{"outputs": [{"name": "\xff"}], "inputs": [' + orjson.dumps(x_input()) + b"]}",
    ),
    # ---- methods ----
    Hostile("get-infer", 405, ("takes POST only",), path=INFER, method="GET"),
    Hostile("put-infer", 405, ("takes POST only",), b"{}", path=INFER, method="PUT"),
    Hostile("post-live", 405, ("takes GET only",), b"{}", path="/v2/health/live"),
    Hostile("post-ready", 405, ("takes GET only",), b"{}", path="/v2/health/ready"),
    Hostile("post-metadata", 405, ("takes GET only",), b"{}", path="/v2/models/iris"),
    Hostile(
        "delete-model-ready",
        405,
        ("takes GET only",),
        path="/v2/models/iris/ready",
        method="DELETE",
    ),
]


def assert_still_serving(v2_http: httpx.Client) -> None:
    """A good infer right after: y = x/2 + 2 for x = [1, 2, 3]."""
    response = v2_http.post(INFER, json={"inputs": [x_input()]})
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    expected = np.array(X, dtype=np.float32) * np.float32(0.5) + np.float32(2)
    assert np.array_equal(np.array(output["data"], dtype=np.float32), expected), output


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_v2_request_is_a_4xx_json_error_saying_what_to_fix(
    v2_http: httpx.Client, case: Hostile
) -> None:
    response = v2_http.request(case.method, case.path, content=case.body, headers=case.headers)
    assert response.status_code == case.status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json", response.headers
    body = orjson.loads(response.content)
    assert list(body) == ["error"], body
    message = body["error"]
    assert isinstance(message, str) and message, body
    for words in case.words:
        assert words in message, (words, message)
    for marker in LEAK_MARKERS:
        assert marker not in message, (marker, message)
    if case.status == 405:  # RFC 9110: a 405 names the methods the resource takes
        taken = "POST" if case.path.endswith("/infer") else "GET, HEAD"
        assert response.headers.get("allow") == taken, response.headers
    assert_still_serving(v2_http)


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


def test_hostile_requests_leave_the_gateway_process_running(
    v2_http: httpx.Client, v2_gateway: GatewayProcess
) -> None:
    """After all of them (this test runs last in the module), the process is the same one
    and still answers."""
    assert v2_gateway.process.poll() is None
    assert v2_http.get("/v2/health/live").json() == {"live": True}
    assert_still_serving(v2_http)
