"""Table-driven tests of gateway.codec, ported from TF Serving's json_tensor_test.cc.

Each case is (request body, signature inputs) -> expected tensors or expected error
(code, message). Error messages are compared in full where TF Serving's wording is known,
since clients match on them. Response bodies are compared as parsed JSON where whitespace
and key order are unspecified, and as exact text for number formatting.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.types import (
    Classification,
    Code,
    DType,
    ExampleBatch,
    Feature,
    ServingError,
    TensorSpec,
)
from gateway.codec import (
    JsonLimits,
    RequestFormat,
    decode_examples,
    decode_predict,
    encode_classify,
    encode_error,
    encode_predict,
    encode_regress,
    parse_body,
    signature_name_of,
)
from gateway.codec.decode_fast import fast_tensor
from gateway.codec.decode_tensor import array_from_flat, exact_values

F, D, I32, I64, S, B = (DType.DT_FLOAT, DType.DT_DOUBLE, DType.DT_INT32, DType.DT_INT64,
                        DType.DT_STRING, DType.DT_BOOL)  # fmt: skip
ROW, COL = RequestFormat.ROW, RequestFormat.COLUMNAR
BAD = Code.INVALID_ARGUMENT


def sig(**dtypes: DType) -> dict[str, TensorSpec]:
    return {name: TensorSpec(f"{name}:0", dtype, None) for name, dtype in dtypes.items()}


def decode(
    body: bytes | str, inputs: dict[str, TensorSpec]
) -> tuple[dict[str, Any], RequestFormat]:
    raw = body.encode() if isinstance(body, str) else body
    return decode_predict(parse_body(raw), inputs)


def error_of(call: Any, *args: Any) -> tuple[Code, str]:
    with pytest.raises(ServingError) as caught:
        call(*args)
    return caught.value.code, caught.value.message


def parsed(data: bytes) -> Any:
    """Parse our JSON output, NaN/Infinity tokens included, for comparison."""
    return parse_body(b'{"v": ' + data + b"}")["v"]


# --------------------------------------------------------------------------- parsing (P1)

PARSE_ERRORS = [
    (b"", "JSON Parse error: The document is empty"),
    (b"   ", "JSON Parse error: The document is empty. at offset: 3"),
    (b'{"a": [1,]}', "JSON Parse error: Invalid value. at offset: 9"),
    (b'{"a" 1}', "JSON Parse error: Missing a colon after a name of object member. at offset: 5"),
    (b'{"a":1,}', "JSON Parse error: Missing a name for object member. at offset: 7"),
    (
        b'{"a":1 "b":2}',
        "JSON Parse error: Missing a comma or '}' after an object member. at offset: 7",
    ),
    (
        b'{"a":[1 2]}',
        "JSON Parse error: Missing a comma or ']' after an array element. at offset: 8",
    ),
    (b'{"a": nul}', "JSON Parse error: Invalid value. at offset: 9"),
    (b'{"a": "x\\q"}', "JSON Parse error: Invalid escape character in string. at offset: 8"),
    (
        b'{"a": "\\ud800"}',
        "JSON Parse error: The surrogate pair in string is invalid. at offset: 7",
    ),
    (
        b'{"a": "\\u12G4"}',
        "JSON Parse error: Incorrect hex digit after \\u escape in string. at offset: 7",
    ),
    (b'{"a": "abc', "JSON Parse error: Missing a closing quotation mark in string. at offset: 10"),
    (b'{"a": "\x01"}', "JSON Parse error: Invalid encoding in string. at offset: 7"),
    (b'{"a": 1.}', "JSON Parse error: Miss fraction part in number. at offset: 8"),
    (b'{"a": 1e}', "JSON Parse error: Miss exponent in number. at offset: 8"),
    (b'{"a": 1e309}', "JSON Parse error: Number too big to be stored in double. at offset: 6"),
    (b'{"a": Infinit}', "JSON Parse error: Invalid value. at offset: 13"),
    (b'{"a": Nan}', "JSON Parse error: Invalid value. at offset: 8"),
    (b'{"a": -}', "JSON Parse error: Invalid value. at offset: 7"),
    (b'{"a": x}', "JSON Parse error: Invalid value. at offset: 6"),
    (b"[1]", "JSON Value: [\n    1\n] Is not object"),
    (b"5", "JSON Value: 5 Is not object"),
    (b'"s"', 'JSON Value: "s" Is not object'),
]


@pytest.mark.parametrize(("body", "message"), PARSE_ERRORS)
def test_parse_errors(body: bytes, message: str) -> None:
    assert error_of(parse_body, body) == (BAD, message)


def test_parse_accepts_nan_infinity_tokens_and_their_rapidjson_spellings() -> None:
    doc = parse_body(b'{"a": [NaN, Infinity, -Infinity, Inf, -Inf, -NaN, 1, 2.5]}')
    values = doc["a"]
    assert isinstance(values, list)
    assert math.isnan(values[0]) and math.isnan(values[5])
    assert values[1:5] == [math.inf, -math.inf, math.inf, -math.inf]
    assert values[6:] == [1, 2.5] and isinstance(values[6], int)


@pytest.mark.parametrize(
    "body",
    [b'{"instances": [[1,2],[3,4],[5,6]]}X', b'{"a": 1} {"b": 2}', b'{"a": 1}\x00garbage'],
)
def test_parse_ignores_bytes_after_the_first_value(body: bytes) -> None:
    assert parse_body(body)


def test_parse_keeps_first_duplicate_key_and_raw_bytes_on_the_exact_path() -> None:
    doc = parse_body(b'{"a": NaN, "k": "\xff\xfe", "k": "second"}')
    assert doc["k"] == b"\xff\xfe".decode("utf-8", "surrogateescape")


def test_parse_big_integers_become_doubles_like_rapidjson() -> None:
    doc = parse_body(
        b'{"u": 18446744073709551615, "big": 18446744073709551616, "neg": -9223372036854775809}'
    )
    assert doc["u"] == 2**64 - 1
    assert isinstance(doc["big"], float) and isinstance(doc["neg"], float)


def test_parse_accepts_half_a_million_levels_of_nesting_when_the_limit_allows() -> None:
    depth = 500_000  # TF Serving's own test; the gateway's default limit is 64 levels
    body = b'{"unused": ' + b"[" * depth + b"]" * depth + b', "inputs": [1]}'
    doc = parse_body(body, JsonLimits(max_depth=depth + 1))
    tensors, fmt = decode_predict(doc, sig(x=I32))
    assert fmt is COL and tensors["x"].tolist() == [1]


def test_deep_nesting_in_an_input_is_an_error_not_a_crash() -> None:
    depth = 5_000
    body = b'{"inputs": ' + b"[" * depth + b"1" + b"]" * depth + b"}"
    doc = parse_body(body, JsonLimits(max_depth=depth + 1))
    code, message = error_of(decode_predict, doc, sig(x=F))
    assert code is BAD and "at most 64 dimensions" in message


# ------------------------------------------------------------------ signature_name (P1)


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b'{"instances": [1]}', ""), (b'{"signature_name": "predict_images"}', "predict_images")],
)
def test_signature_name(body: bytes, expected: str) -> None:
    assert signature_name_of(parse_body(body)) == expected


@pytest.mark.parametrize("value", [b"5", b"null", b'["hello"]'])
def test_signature_name_must_be_a_string(value: bytes) -> None:
    doc = parse_body(b'{"signature_name": ' + value + b"}")
    code, message = error_of(signature_name_of, doc)
    assert code is BAD
    assert message.startswith('JSON Value: {\n    "signature_name": ')
    assert message.endswith(
        " not formatted correctly. 'signature_name' key must be a string value."
    )


def test_error_messages_cut_the_quoted_request_to_256_bytes() -> None:
    doc = parse_body(orjson.dumps({"signature_name": 1, "pad": "x" * 1000}))
    _, message = error_of(signature_name_of, doc)
    quoted = message.removeprefix("JSON Value: ").removesuffix(
        " not formatted correctly. 'signature_name' key must be a string value."
    )
    assert len(quoted.encode()) == 256


# ------------------------------------------------------------------ predict requests

OK_CASES: list[
    tuple[str, str, dict[str, TensorSpec], RequestFormat, dict[str, tuple[Any, Any]]]
] = [
    (
        "single unnamed tensor",
        '{"instances": [[1,2],[3,4],[5,6]]}',
        sig(default=I32),
        ROW,
        {"default": (np.int32, [[1, 2], [3, 4], [5, 6]])},
    ),
    (
        "mixed input for float",
        '{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}',
        sig(default=F),
        ROW,
        {"default": (np.float32, [1, 2, 3, 4, 5.003, 0.007, 0.0])},
    ),
    (
        "mixed input for double",
        '{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}',
        sig(default=D),
        ROW,
        {"default": (np.float64, [1.0, 2, 3, 4, 0.662, 0, 0.0])},
    ),
    (
        "with signature",
        '{"signature_name": "predict_images", "instances": [[1,2]]}',
        sig(default=I32),
        ROW,
        {"default": (np.int32, [[1, 2]])},
    ),
    (
        "b64 scalars",
        '{"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}',
        sig(default=S),
        ROW,
        {"default": (object, [b"hello", b"world"])},
    ),
    (
        "b64 lists",
        '{"instances": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}',
        sig(default=S),
        ROW,
        {"default": (object, [[b"hello"], [b"world"]])},
    ),
    (
        "named b64",
        '{"instances": [{"default": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}]}',
        sig(default=S),
        ROW,
        {"default": (object, [[[b"hello"], [b"world"]]])},
    ),
    (
        "multiple named",
        '{"instances": [{"i": [[1,2],[3,4]], "s": ["foo","bar"], "f": [1.0, NaN], "d": [NaN]},'
        ' {"i": [[7,8],[9,0]], "s": ["baz","bat"], "f": [2.0, Infinity], "d": [2.0]}]}',
        sig(i=I32, s=S, f=F, d=D),
        ROW,
        {
            "i": (np.int32, [[[1, 2], [3, 4]], [[7, 8], [9, 0]]]),
            "s": (object, [[b"foo", b"bar"], [b"baz", b"bat"]]),
            "f": (np.float32, [[1.0, math.nan], [2.0, math.inf]]),
            "d": (np.float64, [[math.nan], [2.0]]),
        },
    ),
    (
        "columnar named",
        '{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]]}}',
        sig(int_tensor=I32),
        COL,
        {"int_tensor": (np.int32, [[[1, 2], [3, 4], [5, 6]]])},
    ),
    (
        "columnar unnamed",
        '{"inputs": [[[1,2],[3,4],[5,6]]]}',
        sig(int_tensor=I32),
        COL,
        {"int_tensor": (np.int32, [[[1, 2], [3, 4], [5, 6]]])},
    ),
    (
        "columnar multiple",
        '{"inputs": {"i": [[1,2]], "s": ["foo", "bar"], "b": {"b64": "aGVsbG8="}, "extra": 1}}',
        sig(i=I32, s=S, b=S),
        COL,
        {"i": (np.int32, [[1, 2]]), "s": (object, [b"foo", b"bar"]), "b": (object, b"hello")},
    ),
    ("columnar scalar", '{"inputs": 5}', sig(x=F), COL, {"x": (np.float32, 5.0)}),
    ("columnar empty list", '{"inputs": []}', sig(x=F), COL, {"x": (np.float32, [])}),
    (
        "object rows, one input",
        '{"instances": [{"x": [1, 2]}, {"x": [3, 4]}]}',
        sig(x=I64),
        ROW,
        {"x": (np.int64, [[1, 2], [3, 4]])},
    ),
    (
        "strings",
        '{"instances": ["foo", "bar", "baz"]}',
        sig(x=S),
        ROW,
        {"x": (object, [b"foo", b"bar", b"baz"])},
    ),
    ("empty rows", '{"instances": [[], []]}', sig(x=F), ROW, {"x": (np.float32, np.zeros((2, 0)))}),
    (
        "float rounding",
        '{"inputs": [1435774380, 3.5e38, -3.5e38, 1e-50, -1e-50]}',
        sig(x=F),
        COL,
        {"x": (np.float32, [1435774336.0, math.inf, -math.inf, 0.0, -0.0])},
    ),
    (
        "uint8 truncation",
        '{"inputs": [300, -1, 2147483647]}',
        sig(x=DType.DT_UINT8),
        COL,
        {"x": (np.uint8, [44, 255, 255])},
    ),
    (
        "int64 extremes",
        '{"inputs": [9223372036854775807, -9223372036854775808]}',
        sig(x=I64),
        COL,
        {"x": (np.int64, [2**63 - 1, -(2**63)])},
    ),
    (
        "uint64 max",
        '{"inputs": [18446744073709551615, 0]}',
        sig(x=DType.DT_UINT64),
        COL,
        {"x": (np.uint64, [2**64 - 1, 0])},
    ),
    (
        "uint32 max",
        '{"inputs": [4294967295]}',
        sig(x=DType.DT_UINT32),
        COL,
        {"x": (np.uint32, [2**32 - 1])},
    ),
    ("bools", '{"inputs": [[true, false]]}', sig(x=B), COL, {"x": (np.bool_, [[True, False]])}),
    (
        "b64 unpadded and spaced",
        '{"inputs": [{"b64": "aGVsbG8"}, {"b64": "aGVs bG8="}, {"b64": ""}]}',
        sig(x=S),
        COL,
        {"x": (object, [b"hello", b"hello", b""])},
    ),
    (
        "utf-8 bytes as sent",
        '{"inputs": ["h\\u00e9", "\\ud83d\\ude00"]}',
        sig(x=S),
        COL,
        {"x": (object, ["hé".encode(), "😀".encode()])},
    ),
    (
        "nan among ints for float",
        '{"inputs": [1, NaN, -Infinity]}',
        sig(x=D),
        COL,
        {"x": (np.float64, [1.0, math.nan, -math.inf])},
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "inputs", "fmt", "expected"), OK_CASES, ids=[c[0] for c in OK_CASES]
)
def test_decode_predict(
    name: str,
    body: str,
    inputs: dict[str, TensorSpec],
    fmt: RequestFormat,
    expected: dict[str, tuple[Any, Any]],
) -> None:
    tensors, got_fmt = decode(body, inputs)
    assert got_fmt is fmt
    assert set(tensors) == set(expected)
    for key, (dtype, values) in expected.items():
        want = np.array(values, dtype=dtype)
        assert tensors[key].dtype == want.dtype, key
        assert tensors[key].shape == want.shape, key
        if want.dtype == object:
            assert tensors[key].tolist() == want.tolist()
        else:
            np.testing.assert_array_equal(tensors[key], want)


def test_decode_predict_float_values_are_float32_rounded_doubles() -> None:
    tensors, _ = decode('{"inputs": [0.1, 16777217]}', sig(x=F))
    assert tensors["x"].tolist() == [float(np.float32(0.1)), 16777216.0]


ERR_CASES: list[tuple[str, str, dict[str, TensorSpec], Code, str]] = [
    (
        "signature not a string",
        '{"signature_name": 5, "instances": [[1,2],[3,4],[5,6,7]]}',
        sig(x=I32),
        BAD,
        'JSON Value: {\n    "signature_name": 5,\n    "instances": [\n        [\n            1,\n'
        "            2\n        ],\n        [\n            3,\n            4\n        ],\n"
        "        [\n"
        "            5,\n            6,\n            7\n        ]\n    ]\n} "
        "not formatted correctly. "
        "'signature_name' key must be a string value.",
    ),
    (
        "both keys",
        '{"instances": [1], "inputs": [1]}',
        sig(x=I32),
        BAD,
        'JSON Value: {\n    "instances": [\n        1\n    ],\n    "inputs": [\n'
        "        1\n    ]\n} "
        "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
    ),
    ("neither key", '{"foo": 1}', sig(x=I32), BAD, "Missing 'inputs' or 'instances' key"),
    (
        "instances not a list",
        '{"instances": 5}',
        sig(x=I32),
        BAD,
        "JSON Value: {\n    \"instances\": 5\n} Expecting 'instances' to be an list/array",
    ),
    (
        "instances empty",
        '{"instances": []}',
        sig(x=I32),
        BAD,
        "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array",
    ),
    (
        "no inputs in signature",
        '{"instances": [1]}',
        {},
        BAD,
        "Failed to get input map for signature: DEFAULT",
    ),
    (
        "no inputs, named",
        '{"signature_name": "s", "instances": [1]}',
        {},
        BAD,
        "Failed to get input map for signature: s",
    ),
    (
        "tensor size",
        '{"instances": [[1,2],[3,4],[5,6,7]]}',
        sig(x=I32),
        BAD,
        "Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 2 but got: 3",
    ),
    (
        "shape",
        '{"instances": [[1,2],[3,4],[[5,6]]]}',
        sig(x=I32),
        BAD,
        "Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting shape [2] but got: [1,2]",
    ),
    (
        "scalar then list",
        '{"instances": [1, [1]]}',
        sig(x=I32),
        BAD,
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting shape [] but got: [1]",
    ),
    (
        "type",
        '{"instances": [[1,2],["a", "b"]]}',
        sig(x=I32),
        BAD,
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
        'JSON Value: "a" Type: String is not of expected type: int32',
    ),
    (
        "int rejects 1.0",
        '{"inputs": [1.0]}',
        sig(x=I32),
        BAD,
        "JSON Value: 1.0 Type: Number is not of expected type: int32",
    ),
    (
        "int32 range",
        '{"inputs": [2147483648]}',
        sig(x=I32),
        BAD,
        "JSON Value: 2147483648 Type: Number is not of expected type: int32",
    ),
    (
        "int64 range",
        '{"inputs": [9223372036854775808]}',
        sig(x=I64),
        BAD,
        "JSON Value: 9223372036854775808 Type: Number is not of expected type: int64",
    ),
    (
        "uint32 negative",
        '{"inputs": [-1]}',
        sig(x=DType.DT_UINT32),
        BAD,
        "JSON Value: -1 Type: Number is not of expected type: uint32",
    ),
    (
        "float rejects bool",
        '{"inputs": [1.0, true]}',
        sig(x=F),
        BAD,
        "JSON Value: true Type: True is not of expected type: float",
    ),
    (
        "float rejects string number",
        '{"inputs": ["1.5"]}',
        sig(x=F),
        BAD,
        'JSON Value: "1.5" Type: String is not of expected type: float',
    ),
    (
        "bool rejects 1",
        '{"inputs": [1]}',
        sig(x=B),
        BAD,
        "JSON Value: 1 Type: Number is not of expected type: bool",
    ),
    (
        "bool rejects string",
        '{"inputs": ["true"]}',
        sig(x=B),
        BAD,
        'JSON Value: "true" Type: String is not of expected type: bool',
    ),
    (
        "null",
        '{"inputs": [null]}',
        sig(x=D),
        BAD,
        "JSON Value: null Type: Null is not of expected type: double",
    ),
    (
        "object for float",
        '{"inputs": [{"a": 1}]}',
        sig(x=F),
        BAD,
        'JSON Value: {\n    "a": 1\n} Type: Object is not of expected type: float',
    ),
    (
        "b64 object for float",
        '{"inputs": {"b64": "aGk="}}',
        sig(x=F),
        BAD,
        'JSON Value: {\n    "b64": "aGk="\n} Type: Object is not of expected type: float',
    ),
    (
        "not b64",
        '{"inputs": [{"b64": "aGk=", "x": 1}]}',
        sig(x=S),
        BAD,
        'JSON Value: {\n    "b64": "aGk=",\n    "x": 1\n} not formatted correctly for base64 data',
    ),
    ("urlsafe b64", '{"inputs": [{"b64": "a-b_"}]}', sig(x=S), BAD, "Unable to base64 decode"),
    ("bad padding", '{"inputs": [{"b64": "aGVsbA="}]}', sig(x=S), BAD, "Unable to base64 decode"),
    (
        "unimplemented columnar",
        '{"inputs": [1]}',
        sig(x=DType.DT_HALF),
        Code.UNIMPLEMENTED,
        "Conversion of JSON Value: 1 to type: half",
    ),
    (
        "unimplemented row is 400",
        '{"instances": [1]}',
        sig(x=DType.DT_COMPLEX64),
        BAD,
        "Failed to process element: 0 of 'instances' list. Error: UNIMPLEMENTED: "
        "Conversion of JSON Value: 1 to type: complex64",
    ),
    (
        "incorrect level",
        '{"inputs": [[1], 2]}',
        sig(x=I32),
        BAD,
        "JSON Value: 2 found at incorrect level: 2 in the JSON DOM. Expected at level: 2",
    ),
    (
        "list too deep",
        '{"inputs": [1, [2]]}',
        sig(x=I32),
        BAD,
        "Encountered list at unexpected level: 1 expected < 1",
    ),
    (
        "list wrong size",
        '{"inputs": [[1, 2], [3]]}',
        sig(x=I32),
        BAD,
        "Encountered list at unexpected size: 1 at level: 1 expected size: 2",
    ),
    (
        "plain list, many inputs",
        '{"instances": [[1]]}',
        sig(a=I32, b=I32),
        BAD,
        "instances is a plain list, but expecting list of objects as multiple input tensors "
        "required as per "
        "tensorinfo_map",
    ),
    (
        "plain value, many inputs",
        '{"inputs": [[1]]}',
        sig(a=I32, b=I32),
        BAD,
        "inputs is a plain value/list, but expecting an object as multiple input tensors "
        "required as per "
        "tensorinfo_map",
    ),
    (
        "missing named input",
        '{"inputs": {"a": [1], "c": [2]}}',
        sig(a=I32, b=I32),
        BAD,
        "Missing named input: b in 'inputs' object.",
    ),
    (
        "object then list",
        '{"instances": [{"a": 1, "b": 2}, [1, 20, 30]]}',
        sig(a=I32, b=I32),
        BAD,
        "Expecting object but got list at item 1 of input list",
    ),
    (
        "list then object",
        '{"instances": [["baz", "bar"], {"x": ["baz", "bat"]}]}',
        sig(x=S),
        BAD,
        "Expecting value/list but got object at item 1 of input list",
    ),
    (
        "unknown key",
        '{"instances": [{"a": 1, "c": 2}]}',
        sig(a=I32, b=I32),
        BAD,
        "Failed to process element: 0 key: c of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON object: does not have named input: c",
    ),
    (
        "missing key",
        '{"instances": [{"a": 1}]}',
        sig(a=I32, b=I32),
        BAD,
        "Failed to process element: 0 of 'instances' list. JSON object: {\n    \"a\": 1\n} "
        "keys must be equal to: a,b",
    ),
    (
        "named shape",
        '{"instances": [{"i": [[1,2],[3,4]], "s": ["foo"]}, {"i": [[[7,8],[9,0]]], "s": ["baz"]}]}',
        sig(i=I32, s=S),
        BAD,
        "Failed to process element: 1 key: i of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting shape [2,2] but got: [1,2,2]",
    ),
    (
        "named size",
        '{"instances": [{"i": [[1,2],[3,4],[5,6]], "s": ["foo"]}, {"i": [[7,8]], "s": ["baz"]}]}',
        sig(i=I32, s=S),
        BAD,
        "Failed to process element: 1 key: i of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 6 but got: 2",
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "inputs", "code", "message"), ERR_CASES, ids=[c[0] for c in ERR_CASES]
)
def test_decode_predict_errors(
    name: str, body: str, inputs: dict[str, TensorSpec], code: Code, message: str
) -> None:
    assert error_of(decode, body, inputs) == (code, message)


def test_value_count_is_checked_before_shape() -> None:
    _, message = error_of(decode, '{"instances": [[[1,2]], [[1],[2],[3]]]}', sig(x=I32))
    assert "Expecting tensor size: 2 but got: 3" in message


def test_quoted_decimals_use_tf_serving_float_text() -> None:
    _, message = error_of(decode, '{"inputs": [0.1, 1e300, NaN]}', sig(x=I32))
    assert message == "JSON Value: 0.1 Type: Number is not of expected type: int32"
    _, message = error_of(decode, '{"inputs": [1e300]}', sig(x=I32))
    assert message == "JSON Value: 1e+300 Type: Number is not of expected type: int32"
    _, message = error_of(decode, '{"inputs": [NaN]}', sig(x=I32))
    assert message == "JSON Value: NaN Type: Number is not of expected type: int32"


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        (F, np.random.default_rng(3).random((1, 8, 8, 3)).tolist()),
        (D, [[1, 2.5], [3, -0.0]]),
        (I32, [[1, -2], [3, 4]]),
        (DType.DT_UINT8, [300, 2]),
        (DType.DT_UINT64, [2**64 - 1]),
        (B, [[True], [False]]),
        (S, [["a", "é"], ["", "x"]]),
        (F, 3),
        (I64, [[], []]),
    ],
)
def test_fast_and_exact_paths_agree(dtype: DType, value: Any) -> None:
    fast = fast_tensor(value, dtype)
    assert fast is not None
    flat, shape = exact_values(value, dtype)
    exact = array_from_flat(flat, dtype, shape)
    assert (fast.dtype, fast.shape, fast.tolist()) == (exact.dtype, exact.shape, exact.tolist())


def test_quoted_request_stops_at_nan_inside_a_container_like_rapidjson() -> None:
    _, message = error_of(
        signature_name_of, parse_body(b'{"signature_name": 1, "a": [1.5, NaN, 2]}')
    )
    assert message == (
        'JSON Value: {\n    "signature_name": 1,\n    "a": [\n        1.5,\n         '
        "not formatted correctly. 'signature_name' key must be a string value."
    )


# ------------------------------------------------------------------ predict responses

INTS = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2], dtype=np.int32).reshape(2, 3, 2)
STRS = np.array([b"hello", b"world", b"tf", b"serving"], dtype=object).reshape(2, 2)
ENCODE_CASES: list[tuple[str, dict[str, Any], RequestFormat, Any]] = [
    ("single tensor rows", {"int_tensor": INTS}, ROW, {"predictions": INTS.tolist()}),
    ("single tensor columns", {"int_tensor": INTS}, COL, {"outputs": INTS.tolist()}),
    (
        "scalars per row",
        {"x": np.arange(1, 6, dtype=np.int32)},
        ROW,
        {"predictions": [1, 2, 3, 4, 5]},
    ),
    (
        "bytes suffix",
        {"str_tensor_bytes": STRS},
        ROW,
        {
            "predictions": [
                [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
                [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}],
            ]
        },
    ),
    (
        "plain strings",
        {"str_tensor": STRS},
        COL,
        {"outputs": [["hello", "world"], ["tf", "serving"]]},
    ),
    (
        "bare name bytes is not a suffix",
        {"bytes": STRS},
        COL,
        {"outputs": [["hello", "world"], ["tf", "serving"]]},
    ),
    (
        "multiple named rows",
        {
            "int_tensor": INTS,
            "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"bat"]], dtype=object),
            "float_tensor": np.array([[1.0], [2.0]], dtype=np.float32),
            "double_scalar_tensor": np.array([8.0, 9.0]),
            "str_tensor_bytes": STRS,
        },
        ROW,
        {
            "predictions": [
                {
                    "double_scalar_tensor": 8.0,
                    "float_tensor": [1.0],
                    "int_tensor": [[1, 2], [3, 4], [5, 6]],
                    "str_tensor": ["foo", "bar"],
                    "str_tensor_bytes": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
                },
                {
                    "double_scalar_tensor": 9.0,
                    "float_tensor": [2.0],
                    "int_tensor": [[7, 8], [9, 0], [1, 2]],
                    "str_tensor": ["baz", "bat"],
                    "str_tensor_bytes": [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}],
                },
            ]
        },
    ),
    (
        "multiple named columns, different batch",
        {"a": np.array([1, 2], dtype=np.int64), "b": np.array([[True]])},
        COL,
        {"outputs": {"a": [1, 2], "b": [[True]]}},
    ),
    ("rank 0 column", {"x": np.array(7, dtype=np.int64)}, COL, {"outputs": 7}),
    ("empty batch", {"x": np.zeros((0, 3), dtype=np.float32)}, ROW, {"predictions": []}),
    ("zero inner dim", {"x": np.zeros((2, 0, 3), dtype=np.float32)}, COL, {"outputs": [[], []]}),
    (
        "int64 exact",
        {
            "a": np.array([2**63 - 1, -(2**63)], dtype=np.int64),
            "u": np.array([2**64 - 1, 0], dtype=np.uint64),
        },
        ROW,
        {"predictions": [{"a": 2**63 - 1, "u": 2**64 - 1}, {"a": -(2**63), "u": 0}]},
    ),
    (
        "small ints",
        {
            "a": np.array([-128, 127], dtype=np.int8),
            "b": np.array([255, 0], dtype=np.uint8),
            "c": np.array([7, 8], dtype=np.uint32),
            "d": np.array([-2, 3], dtype=np.int16),
        },
        COL,
        {"outputs": {"a": [-128, 127], "b": [255, 0], "c": [7, 8], "d": [-2, 3]}},
    ),
]


@pytest.mark.parametrize(
    ("name", "outputs", "fmt", "expected"), ENCODE_CASES, ids=[c[0] for c in ENCODE_CASES]
)
def test_encode_predict(
    name: str, outputs: dict[str, Any], fmt: RequestFormat, expected: Any
) -> None:
    assert orjson.loads(encode_predict(outputs, fmt)) == expected


@pytest.mark.parametrize(
    ("outputs", "fmt", "text"),
    [
        (
            {
                "f": np.array(
                    [9000000, 999999, 0.5, 0.0003, 0.00003, 555557.5], np.float32
                ).reshape(2, 3)
            },
            ROW,
            b'{"predictions": [[9e+06,999999.0,0.5], [0.0003,3e-05,555557.5]]}',
        ),
        (
            {"f": np.array([np.nan, np.inf, 3, -np.inf], np.float32).reshape(2, 2)},
            ROW,
            b'{"predictions": [[NaN,Infinity], [3.0,-Infinity]]}',
        ),
        (
            {"d": np.array([1 / 3, 0.1 + 0.2, 3.0])},
            COL,
            b'{"outputs": [0.33333333333333331,0.30000000000000004,3.0]}',
        ),
        (
            {"f": np.array([1 / 3, 1435774336.0, -0.0], np.float32)},
            COL,
            b'{"outputs": [0.333333343,1.43577434e+09,-0.0]}',
        ),
        ({"x_bytes": np.array([1.5, 2.0], np.float32)}, COL, b'{"outputs": [1.5,2.0]}'),
        ({"h": np.array([0.1, 65504], np.float16)}, COL, b'{"outputs": [0.0999755859,65504.0]}'),
        ({"f": np.array(0.1, np.float32)}, COL, b'{"outputs": 0.1}'),
    ],
)
def test_encode_predict_number_text(
    outputs: dict[str, Any], fmt: RequestFormat, text: bytes
) -> None:
    assert encode_predict(outputs, fmt) == text


def test_encode_predict_escapes_strings_and_keys() -> None:
    body = encode_predict(
        {'q"k': np.array([b'a"b\\\n\x01', "é".encode()], dtype=object), "z": np.array([1, 2])}, ROW
    )
    assert orjson.loads(body) == {
        "predictions": [{'q"k': 'a"b\\\n\x01', "z": 1}, {'q"k': "é", "z": 2}]
    }
    assert b"\\u0001" in body


ENCODE_ERRORS: list[tuple[dict[str, Any], RequestFormat, str]] = [
    ({}, ROW, "Cannot convert empty tensor map to JSON"),
    (
        {"tensor": np.array([1 + 2j, 2], dtype=np.complex64)},
        ROW,
        "Failed to write JSON value for tensor type: complex64",
    ),
    (
        {"tensor": np.array([1], dtype=np.uint16)},
        COL,
        "Failed to write JSON value for tensor type: uint16",
    ),
    ({"tensor": np.array(1, dtype=np.int32)}, ROW, "Tensor name: tensor has no shape information "),
    (
        {"int_tensor": np.zeros((2, 3)), "str_tensor": np.zeros((1, 3))},
        ROW,
        "Tensor name: str_tensor has inconsistent batch size: 1 expecting: 2",
    ),
]


@pytest.mark.parametrize(("outputs", "fmt", "message"), ENCODE_ERRORS)
def test_encode_predict_errors(outputs: dict[str, Any], fmt: RequestFormat, message: str) -> None:
    assert error_of(encode_predict, outputs, fmt) == (BAD, message)


def test_round_trip_of_a_float_tensor_through_json() -> None:
    values = np.random.default_rng(5).standard_normal((4, 5, 6)).astype(np.float32)
    body = encode_predict({"y": values}, COL)
    tensors, _ = decode(b'{"inputs": ' + body[len(b'{"outputs": ') : -1] + b"}", sig(y=F))
    np.testing.assert_array_equal(tensors["y"], values)


# ------------------------------------------------------------------ errors (E1)


def test_encode_error_escapes_the_message() -> None:
    body = encode_error('bad "x"\n\x01 é')
    assert orjson.loads(body) == {"error": 'bad "x"\n\x01 é'}


# ------------------------------------------------------------------ classify / regress (C1, C2)


def test_decode_examples_without_context() -> None:
    doc = parse_body(
        b'{"examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0], "age": 20},'
        b' {"names": ["baz"], "ratings": 6.0, "empty": []}]}'
    )
    assert decode_examples(doc) == ExampleBatch(
        examples=(
            {
                "names": Feature("bytes", (b"foo", b"bar")),
                "ratings": Feature("float", (8.0, 9.0)),
                "age": Feature("int64", (20,)),
            },
            {
                "names": Feature("bytes", (b"baz",)),
                "ratings": Feature("float", (6.0,)),
                "empty": Feature(None, ()),
            },
        ),
        context=None,
    )


def test_decode_examples_with_context_b64_nan_and_bools() -> None:
    doc = parse_body(
        b'{"signature_name": "custom", "context": {"query": "pizza", "location": ["sfo"]},'
        b' "examples": [{"ratings": [8.0, NaN, Infinity, 1e-50, 0.1]},'
        b' {"names": ["baz", {"b64": "aGVsbG8="}], "intboolmix": [1, true, false]},'
        b' {"ratings": -Infinity, "big": 1e300, "huge": 18446744073709551616}]}'
    )
    batch = decode_examples(doc)
    assert batch.context == {
        "query": Feature("bytes", (b"pizza",)),
        "location": Feature("bytes", (b"sfo",)),
    }
    ratings = batch.examples[0]["ratings"]
    assert ratings.kind == "float" and math.isnan(float(ratings.values[1]))
    assert ratings.values[2:] == (math.inf, 0.0, float(np.float32(0.1)))
    assert batch.examples[1] == {
        "names": Feature("bytes", (b"baz", b"hello")),
        "intboolmix": Feature("int64", (1, 1, 0)),
    }
    assert batch.examples[2]["big"] == Feature("float", (math.inf,))
    assert batch.examples[2]["huge"].kind == "float"


EXAMPLE_ERRORS = [
    (
        b'{"context": [{"names": ["foo"]}], "examples": 5}',
        "Example must be JSON object but got JSON Array",
    ),
    (b'{"context": {"a": null}}', "Feature: a has element with unexpected JSON type: Null"),
    (
        b'{"signature_name": "s"}',
        'JSON Value: {\n    "signature_name": "s"\n} '
        "When method is classify, key 'examples' is expected and was not found",
    ),
    (
        b'{"examples": {"names": ["foo", "bar"]}}',
        'JSON Value: {\n    "examples": {\n        "names": [\n            "foo",\n'
        '            "bar"\n'
        "        ]\n    }\n} Expecting 'examples' value to be an list/array",
    ),
    (
        b'{"examples": []}',
        "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array",
    ),
    (b'{"examples": [[{"names": ["foo"]}]]}', "Example must be JSON object but got JSON Array"),
    (
        b'{"examples": [{"names": [10, null]}]}',
        "Feature: names has element with unexpected JSON type: Null",
    ),
    (
        b'{"examples": [{"names": [10, 10.0]}]}',
        "Unexpected element type in feature: names expecting type: int64",
    ),
    (
        b'{"examples": [{"names": ["a", 1]}]}',
        "Unexpected element type in feature: names expecting type: bytes",
    ),
    (
        b'{"examples": [{"names": [1.5, "a"]}]}',
        "Unexpected element type in feature: names expecting type: float",
    ),
    (
        b'{"examples": [{"names": [10, {"test": 10}]}]}',
        "Feature: names has element with unexpected JSON type: Object",
    ),
    (
        b'{"examples": [{"names": [[10], 20]}]}',
        "Feature: names has element with unexpected JSON type: Array",
    ),
    (
        b'{"examples": [{"names": [20, 18446744073709551603]}]}',
        "Feature: names has uint64_t element. Only int64_t is supported.",
    ),
    (b'{"examples": [{"names": [{"b64": "a-b_"}]}]}', "Unable to base64 decode"),
]


@pytest.mark.parametrize(("body", "message"), EXAMPLE_ERRORS)
def test_decode_examples_errors(body: bytes, message: str) -> None:
    assert error_of(decode_examples, parse_body(body)) == (BAD, message)


def test_encode_classify() -> None:
    results = [
        Classification((("car", 0.2), ("bike", 0.7), ("bus", 0.1))),
        Classification((("car", 0.7), ("bike", 0.1), ("bus", 0.2))),
        Classification((("", 12.0),)),
    ]
    body = encode_classify(results)
    assert body == (
        b'{"results": [[["car", 0.2], ["bike", 0.7], ["bus", 0.1]], '
        b'[["car", 0.7], ["bike", 0.1], ["bus", 0.2]], [["", 12.0]]]}'
    )


def test_encode_regress() -> None:
    assert encode_regress([42.0]) == b'{"results": [42.0]}'
    assert encode_regress([0.2, math.inf, 1.0, -math.inf, math.nan, 1 / 3]) == (
        b'{"results": [0.2, Infinity, 1.0, -Infinity, NaN, 0.333333343]}'
    )


def test_empty_results_are_errors() -> None:
    assert error_of(encode_classify, []) == (
        BAD,
        "Cannot convert empty ClassificationResults to JSON",
    )
    assert error_of(encode_regress, []) == (BAD, "Cannot convert empty RegressionResults to JSON")


# ------------------------------------------------------------------ robustness

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=5)
    | st.builds(lambda s: {"b64": s}, st.text(max_size=8)),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "b64"]), children, max_size=3)
    ),
    max_leaves=12,
)
DTYPES = st.sampled_from(list(DType))


@settings(max_examples=300, deadline=None)
@given(
    value=JSON_VALUES, key=st.sampled_from(["instances", "inputs"]), dtype=DTYPES, two=st.booleans()
)
def test_decode_raises_only_serving_errors(value: Any, key: str, dtype: DType, two: bool) -> None:
    inputs = sig(a=dtype, b=dtype) if two else sig(a=dtype)
    try:
        decode_predict({key: value}, inputs)
        decode_examples({"examples": value, "context": value})
    except ServingError:
        pass


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
def test_parse_raises_only_serving_errors(body: bytes) -> None:
    try:
        parse_body(b'{"a": ' + body)
        parse_body(body)
    except ServingError:
        pass


def test_b64_round_trip_of_arbitrary_bytes() -> None:
    payload = bytes(range(256))
    body = encode_predict({"out_bytes": np.array([payload], dtype=object)}, COL)
    encoded = orjson.loads(body)["outputs"][0]["b64"]
    assert base64.b64decode(encoded) == payload
    tensors, _ = decode(b'{"inputs": [{"b64": "' + encoded.encode() + b'"}]}', sig(x=S))
    assert tensors["x"].tolist() == [payload]
