"""The codec's big-tensor paths give exactly what the exact paths give (no mocks).

- decode: `parse_predict` + `decode_predict_document` against `parse_body` +
  `signature_name_of` + `decode_predict`, for generated bodies (regular and ragged nested
  lists of numbers, bools, strings, b64 objects and nulls; both formats; extreme number
  tokens; duplicate keys, a BOM, small limits) padded past `FAST_BODY_BYTES` so the fast
  reader sees them: the same tensors (dtype, shape, bits) and format, or the same error
  (code and message) at the same step;
- encode: `tensor_texts` against `template_texts` (the exact per-element template), byte
  for byte;
- the results, the document and the errors pickle.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from clients.types import DType, ServingError, TensorSpec
from gateway.codec import (
    JsonLimits,
    RequestFormat,
    decode_predict,
    decode_predict_document,
    encode_predict,
    parse_body,
    parse_predict,
    signature_name_of,
)
from gateway.codec.decode_body import FAST_BODY_BYTES
from gateway.codec.encode_text import SMALL_TENSOR, template_texts, tensor_texts

Outcome = tuple[str, object]
SIGNATURE_DTYPES = [
    DType.DT_FLOAT,
    DType.DT_DOUBLE,
    DType.DT_INT32,
    DType.DT_INT64,
    DType.DT_UINT8,
    DType.DT_UINT64,
    DType.DT_BOOL,
    DType.DT_STRING,
    DType.DT_HALF,
]
NUMBER_TOKENS = [
    "0", "-0", "-0.0", "0.0", "1", "-1", "1.5", "1e400", "-1e400", "1e-400", "0e400", "NaN",
    "Infinity", "-Infinity", "2147483647", "2147483648", "-2147483648", "-2147483649", "255",
    "256", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "18446744073709551616",
    "123456789012345678901234567890", "3.4028235677973366e38", "3.4028234663852886e38",
    "1.401298464324817e-45", "7e-46", "4.9e-324", "2.4703282292062328e-324", "1E5", "1e+2",
    "0.1000000000000000055511151231257827021181583404541015625", "16777217", "9007199254740993",
]  # fmt: skip
OTHER_TOKENS = ["true", "false", "null", '"a"', '""', '"[,]"', '{"b64": "AA=="}', "{}", "[]"]


def number_tokens() -> st.SearchStrategy[str]:
    return (
        st.sampled_from(NUMBER_TOKENS)
        | st.integers(-(2**64), 2**65).map(str)
        | st.integers(-300, 300).map(str)
        | st.floats(width=32).map(float.__repr__)
        | st.floats(allow_nan=False, allow_infinity=False).map(float.__repr__)
    )


def plain_number_tokens() -> st.SearchStrategy[str]:
    """Tokens every JSON parser reads: the fast reader's domain."""
    return (
        st.integers(-(2**63), 2**64 - 1).map(str)
        | st.integers(-300, 300).map(str)
        | st.floats(width=32, allow_nan=False, allow_infinity=False).map(float.__repr__)
        | st.floats(allow_nan=False, allow_infinity=False).map(float.__repr__)
        | st.sampled_from(["-0", "-0.0", "1E5", "1e-400", "0e400", "3.4028235677973366e38"])
    )


@st.composite
def tensor_texts_json(draw: st.DrawFn) -> str:
    """A JSON array as text: regular, or with one leaf (or one row) changed."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    if draw(st.integers(0, 4)):
        leaf = draw(st.sampled_from(["int", "float", "any"]))
        tokens = {
            "int": st.integers(-(2**63), 2**64 - 1).map(str)
            | st.integers(-(2**31), 2**31 - 1).map(str)
            | st.integers(0, 255).map(str),
            "float": st.floats(width=32, allow_nan=False, allow_infinity=False).map(repr),
            "any": plain_number_tokens(),
        }[leaf]
        leaves = [draw(tokens) for _ in range(int(np.prod(shape)))]
    else:
        kinds = draw(st.lists(number_tokens() | st.sampled_from(OTHER_TOKENS), min_size=1))
        leaves = [draw(st.sampled_from(kinds)) for _ in range(int(np.prod(shape)))]
    nested: list[Any] = leaves
    for size in reversed(shape[1:]):
        nested = [nested[i : i + size] for i in range(0, len(nested), size)]
    change = draw(st.sampled_from(["none"] * 10 + ["leaf", "drop", "deepen", "empty"]))
    target: list[Any] = nested
    while change != "none" and isinstance(target[0], list) and draw(st.booleans()):
        target = target[0]
    if change == "leaf":
        target[-1] = draw(number_tokens() | st.sampled_from(OTHER_TOKENS))
    elif change == "drop" and len(target) > 1:
        target.pop()
    elif change == "deepen":
        target[-1] = [target[-1]]
    elif change == "empty":
        target[-1] = []
    space = draw(st.sampled_from(["", " ", "\n  "]))
    return write(nested, space)


def write(value: object, space: str) -> str:
    if isinstance(value, list):
        return "[" + ("," + space).join(write(item, space) for item in value) + "]"
    assert isinstance(value, str)
    return value


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, dict[str, TensorSpec]]:
    """A predict body (either format, maybe a signature_name, odd keys) and a signature."""
    names = draw(st.sampled_from([["x"], ["x"], ["x", "y"]]))
    inputs = {
        name: TensorSpec(
            f"{name}:0", draw(st.sampled_from(SIGNATURE_DTYPES + SIGNATURE_DTYPES[:4])), None
        )
        for name in names
    }
    layout = draw(st.sampled_from(["instances", "inputs", "inputs object"]))
    if layout == "inputs object":
        present = draw(st.sampled_from([names, names, ["x", "y", "z"], ["x", "x"], ["y"]]))
        members = [f'"{name}": {draw(tensor_texts_json())}' for name in present]
        value = "{" + ", ".join(members) + "}"
        key = "inputs"
    else:
        value, key = draw(tensor_texts_json()), layout
    members = [f'"{key}": {value}']
    extra = draw(st.sampled_from([""] * 8 + ["name"] * 6 + ["bad name", "other", "both", "dup"]))
    if extra == "name":
        members.insert(draw(st.integers(0, 1)), '"signature_name": "serving_default"')
    elif extra == "bad name":
        members.append('"signature_name": 3')
    elif extra == "other":
        members.append('"extra": [[1], [2, 3]]')
    elif extra == "both":
        members.append('"inputs": [1.0]' if key == "instances" else '"instances": [1.0]')
    elif extra == "dup":
        members.append(f'"{key}": [2.5]')
    text = "{" + ", ".join(members) + "}"
    padding = " " * max(0, FAST_BODY_BYTES - len(text)) if draw(st.integers(0, 9)) else ""
    prefix = "\ufeff" if draw(st.integers(0, 19)) == 0 else ""
    return (prefix + text + padding).encode(), inputs


def exact_outcome(body: bytes, inputs: dict[str, TensorSpec], limits: JsonLimits) -> list[Outcome]:
    steps: list[Outcome] = []
    try:
        document = parse_body(body, limits)
        steps.append(("signature", signature_name_of(document)))
        tensors, request_format = decode_predict(document, inputs, limits)
    except ServingError as error:
        return [*steps, ("error", (error.code, error.message))]
    return [*steps, ("tensors", described(tensors)), ("format", request_format)]


def new_outcome(body: bytes, inputs: dict[str, TensorSpec], limits: JsonLimits) -> list[Outcome]:
    steps: list[Outcome] = []
    try:
        document = parse_predict(body, limits)
        steps.append(("signature", document.signature_name))
        document = pickle.loads(pickle.dumps(document))
        tensors, request_format = decode_predict_document(document, inputs, limits)
    except ServingError as error:
        return [*steps, ("error", (error.code, error.message))]
    return [*steps, ("tensors", described(tensors)), ("format", request_format)]


def described(tensors: dict[str, npt.NDArray[Any]]) -> dict[str, object]:
    """Name -> (dtype, shape, bits): NaN payloads and -0.0 compare exactly."""
    return {
        name: (str(a.dtype), a.shape, a.tolist() if a.dtype == object else a.tobytes())
        for name, a in tensors.items()
    }


LIMITS = st.sampled_from(
    [
        JsonLimits(),
        JsonLimits(max_depth=4),
        JsonLimits(max_elements=7),
        JsonLimits(max_string_bytes=1),
    ]
)


@settings(max_examples=400, deadline=None)
@given(case=bodies(), limits=LIMITS)
def test_new_decode_path_matches_the_exact_path(
    case: tuple[bytes, dict[str, TensorSpec]], limits: JsonLimits
) -> None:
    body, inputs = case
    assert new_outcome(body, inputs, limits) == exact_outcome(body, inputs, limits)


FLOAT_IMAGE = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
IMAGE_BODIES = {
    "columnar object": orjson.dumps({"inputs": {"x": FLOAT_IMAGE.tolist()}}),
    "columnar plain": orjson.dumps({"inputs": FLOAT_IMAGE.tolist()}),
    "row": orjson.dumps({"instances": FLOAT_IMAGE.tolist()}),
    "json.dumps with a name": json.dumps(
        {"signature_name": "serving_default", "instances": FLOAT_IMAGE.tolist()}
    ).encode(),
}


@pytest.mark.parametrize("layout", sorted(IMAGE_BODIES))
@pytest.mark.parametrize("dtype", [DType.DT_FLOAT, DType.DT_DOUBLE, DType.DT_INT32])
def test_float_image_takes_the_fast_path(layout: str, dtype: DType) -> None:
    body = IMAGE_BODIES[layout]
    inputs = {"x": TensorSpec("x:0", dtype, None)}
    document = parse_predict(body)
    assert document.numeric is not None  # read without building Python objects
    assert new_outcome(body, inputs, JsonLimits()) == exact_outcome(body, inputs, JsonLimits())


def test_float_image_values() -> None:
    inputs = {"x": TensorSpec("x:0", DType.DT_FLOAT, None)}
    tensors, request_format = decode_predict_document(
        parse_predict(IMAGE_BODIES["columnar object"]), inputs
    )
    assert request_format is RequestFormat.COLUMNAR
    assert tensors["x"].dtype == np.float32 and tensors["x"].shape == (1, 224, 224, 3)
    assert tensors["x"].tobytes() == FLOAT_IMAGE.tobytes()


def ragged_image(change: str) -> bytes:
    """The image with one change; the exact path's error walk is slow, so the cases that
    cannot be told by the shape alone use a smaller image (1x224x224x3 -> 1x224x9x3)."""
    tricky = change in ("swapped lengths", "nested leaf")
    rows: list[Any] = (FLOAT_IMAGE if tricky else FLOAT_IMAGE[:, :, :9]).tolist()
    if change == "short row":
        rows[0][100][7] = rows[0][100][7][:2]
    elif change == "long row":
        rows[0][100][8].append(0.5)
    elif change == "nested leaf":
        rows[0][100][7][1] = [0.5]
    elif change == "swapped lengths":  # one row short, the next long: the count still fits
        rows[0][100][7].pop()
        rows[0][100][8].append(0.5)
    elif change == "bool":
        rows[0][223][8][2] = True
    elif change == "string":
        rows[0][0][0][0] = "0.5"
    elif change == "null":
        rows[0][5][5][1] = None
    return orjson.dumps({"inputs": {"x": rows}})


@pytest.mark.parametrize(
    "change", ["short row", "long row", "nested leaf", "swapped lengths", "bool", "string", "null"]
)
def test_ragged_or_mixed_image_gives_the_exact_error(change: str) -> None:
    body = ragged_image(change)
    inputs = {"x": TensorSpec("x:0", DType.DT_FLOAT, None)}
    assert parse_predict(body).numeric is None
    outcome = new_outcome(body, inputs, JsonLimits())
    assert outcome == exact_outcome(body, inputs, JsonLimits())
    assert outcome[-1][0] == "error"


@pytest.mark.parametrize(
    ("limits", "dtype"),
    [
        (JsonLimits(max_elements=150_000), DType.DT_FLOAT),  # 150 528 elements
        (JsonLimits(max_depth=5), DType.DT_FLOAT),  # the object form nests 6 deep
        (JsonLimits(), DType.DT_INT32),  # float tokens for an int32 input
        (JsonLimits(), DType.DT_BOOL),
        (JsonLimits(), DType.DT_STRING),
        (JsonLimits(), DType.DT_HALF),
    ],
)
def test_image_errors_are_the_exact_ones(limits: JsonLimits, dtype: DType) -> None:
    body = IMAGE_BODIES["columnar object"]
    inputs = {"x": TensorSpec("x:0", dtype, None)}
    outcome = new_outcome(body, inputs, limits)
    assert outcome == exact_outcome(body, inputs, limits)
    assert outcome[-1][0] == "error"


def test_integer_image_for_every_integer_dtype() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (1, 64, 64, 3))
    body = orjson.dumps({"instances": pixels.tolist()})
    for dtype in (DType.DT_UINT8, DType.DT_INT32, DType.DT_INT64, DType.DT_FLOAT, DType.DT_UINT64):
        inputs = {"x": TensorSpec("x:0", dtype, None)}
        assert parse_predict(body).numeric is not None
        assert new_outcome(body, inputs, JsonLimits()) == exact_outcome(body, inputs, JsonLimits())


def test_errors_and_results_pickle() -> None:
    error = ServingError(*exact_error(b"{", {}))
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message) == (error.code, error.message)
    tensors, request_format = decode_predict_document(
        parse_predict(IMAGE_BODIES["row"]), {"x": TensorSpec("x:0", DType.DT_FLOAT, None)}
    )
    assert pickle.loads(pickle.dumps((tensors, request_format)))[1] is RequestFormat.ROW


def exact_error(body: bytes, inputs: dict[str, TensorSpec]) -> tuple[Any, str]:
    outcome = exact_outcome(body, inputs, JsonLimits())[-1]
    assert outcome[0] == "error"
    code, message = outcome[1]  # type: ignore[misc]
    return code, message


@pytest.mark.parametrize(
    "template",
    [
        '{"inputs": %s, "inputs": %s}',
        '{"inputs": {"x": %s, "x": %s}}',
        '{"instances": %s, "instances": %s}',
    ],
)
def test_duplicate_keys_with_the_same_shape(template: str) -> None:
    """Same marks either way: only the duplicate check sends these the exact way."""
    first, second = (json.dumps(np.full((40, 40), value).tolist()) for value in (1.5, 2.5))
    body = (template % (first, second)).encode()
    inputs = {"x": TensorSpec("x:0", DType.DT_FLOAT, None)}
    assert new_outcome(body, inputs, JsonLimits()) == exact_outcome(body, inputs, JsonLimits())


# ------------------------------------------------------------------ encode

FLOAT32_EXTREMES = np.array(
    [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, 1.1754942e-38, 1.1754944e-38, 3.4028235e38,
     1e-10, 9.99999e-10, 1e-9, 1.5e-7, 1e-5, 9.99999e-5, 1e-4, 0.5, 999999.0, 999999.5,
     1e6, 1.5e6, 123456789.0, 1e9, 1e15, 9.999999e15, 1e16, 1e22, 1e23, 16777216.0, 0.1],
    dtype=np.float32,
)  # fmt: skip


def float32_elements() -> st.SearchStrategy[float]:
    return st.floats(width=32) | st.sampled_from(FLOAT32_EXTREMES.tolist())


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    inner=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=6),
    dtype=st.sampled_from([np.float32, np.float32, np.float16]),
)
def test_new_float_writer_matches_the_template(
    data: st.DataObject, inner: tuple[int, ...], dtype: type[np.generic]
) -> None:
    """Byte-identical to the per-element printf template, whole and split by rows; the
    leading dimension makes the tensor bigger than `SMALL_TENSOR` (the new path)."""
    rows = -(-(SMALL_TENSOR + 1) // int(np.prod(inner))) + data.draw(st.integers(0, 3))
    elements = float32_elements() if dtype is np.float32 else None
    array = data.draw(hnp.arrays(dtype, (rows, *inner), elements=elements))
    for split_rows in (False, True):
        assert tensor_texts(array, split_rows=split_rows) == template_texts(
            array, split_rows=split_rows
        )


@pytest.mark.parametrize("scale", ["unit", "wide", "softmax"])
def test_new_float_writer_on_an_image_sized_output(scale: str) -> None:
    """Wide: every float32 exponent, infinities and subnormals included (1x64x64x3: the
    template's per-element checks make it the slow side)."""
    rng = np.random.default_rng(2)
    shape = (1, 64, 64, 3)
    with np.errstate(over="ignore"):
        outputs = {
            "unit": FLOAT_IMAGE,
            "wide": rng.standard_normal(shape) * 10.0 ** rng.integers(-46, 40, shape),
            "softmax": np.exp(-rng.exponential(8.0, (196, 768))),
        }[scale].astype(np.float32)
    for split_rows in (False, True):
        assert tensor_texts(outputs, split_rows=split_rows) == template_texts(
            outputs, split_rows=split_rows
        )
    for request_format in RequestFormat:
        body = encode_predict({"y": outputs}, request_format)
        assert body == reference_predict_body(outputs, request_format)


def reference_predict_body(array: npt.NDArray[Any], request_format: RequestFormat) -> bytes:
    if request_format is RequestFormat.ROW:
        return (
            '{"predictions": [' + ", ".join(template_texts(array, split_rows=True)) + "]}"
        ).encode()
    return ('{"outputs": ' + template_texts(array)[0] + "}").encode()


def test_documents_outlive_the_next_parse() -> None:
    """The thread's parser is reused: a document keeps copies, never the parser's state;
    a body the parser refuses (too deep, a big integer) leaves it usable."""
    inputs = {"x": TensorSpec("x:0", DType.DT_FLOAT, None)}
    first = parse_predict(IMAGE_BODIES["columnar object"])
    refused = b'{"instances": [%s]}' % b",".join([b"123456789012345678901234567890"] * 200)
    assert parse_predict(refused).numeric is None
    second = parse_predict(orjson.dumps({"instances": np.zeros((40, 40)).tolist()}))
    assert first.numeric is not None and second.numeric is not None
    tensors, _ = decode_predict_document(first, inputs)
    assert tensors["x"].tobytes() == FLOAT_IMAGE.tobytes()
    assert decode_predict_document(second, inputs)[0]["x"].shape == (40, 40)
