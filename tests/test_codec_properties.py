"""Property tests of the codec (hypothesis): round trips, fast == exact, no crashes.

- Integer and bool tensors are written as plain JSON.
- Any tensor of a supported dtype, written by `encode_predict` (row or columnar format),
  read back by `parse_body` + `decode_predict`, is the same tensor (b64 strings too).
- The fast path (`gateway.codec.decode_fast`) agrees with TF Serving's element-by-element walk:
  same tensor when it answers, and no answer when the walk raises.
- The byte-level depth scan equals the depth of the parsed document.
- Arbitrary JSON documents and arbitrary bytes raise nothing but ServingError.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from clients.types import DType, ServingError, TensorSpec
from gateway.codec import (
    JsonLimits,
    RequestFormat,
    decode_examples,
    decode_predict,
    encode_predict,
    parse_body,
)
from gateway.codec.decode_fast import fast_tensor
from gateway.codec.decode_tensor import array_from_flat, exact_values
from gateway.codec.encode_text import tensor_texts
from gateway.codec.limits import nesting_depth

ROW, COL = RequestFormat.ROW, RequestFormat.COLUMNAR
NUMERIC = [
    (DType.DT_FLOAT, np.float32),
    (DType.DT_DOUBLE, np.float64),
    (DType.DT_INT8, np.int8),
    (DType.DT_UINT8, np.uint8),
    (DType.DT_INT16, np.int16),
    (DType.DT_INT32, np.int32),
    (DType.DT_INT64, np.int64),
    (DType.DT_UINT32, np.uint32),
    (DType.DT_UINT64, np.uint64),
    (DType.DT_BOOL, np.bool_),
]
PREFIXES = {ROW: (b'{"predictions": ', b'{"instances": '), COL: (b'{"outputs": ', b'{"inputs": ')}


def sig(**dtypes: DType) -> dict[str, TensorSpec]:
    return {name: TensorSpec(f"{name}:0", dtype, None) for name, dtype in dtypes.items()}


def as_request(response: bytes, fmt: RequestFormat) -> bytes:
    """A predict response turned into the request that sends the same tensors back."""
    old, new = PREFIXES[fmt]
    assert response.startswith(old)
    return new + response[len(old) :]


def round_trip(
    arrays: dict[str, npt.NDArray[Any]], dtypes: dict[str, DType], fmt: RequestFormat
) -> dict[str, npt.NDArray[Any]]:
    body = as_request(encode_predict(arrays, fmt), fmt)
    tensors, got_format = decode_predict(parse_body(body), sig(**dtypes))
    assert got_format is fmt
    return tensors


def assert_same(got: npt.NDArray[Any], expected: npt.NDArray[Any]) -> None:
    assert got.shape == expected.shape
    if expected.dtype == object:
        assert got.tolist() == expected.tolist()
        return
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    if expected.dtype.kind == "f":  # -0.0 stays -0.0 (a NaN's sign is not kept: "NaN")
        numbers = ~np.isnan(expected)
        assert (np.signbit(got[numbers]) == np.signbit(expected[numbers])).all()


def shapes(fmt: RequestFormat) -> st.SearchStrategy[tuple[int, ...]]:
    """Rows need rank >= 1; JSON cannot carry dimensions after a 0, so sides are >= 1."""
    return hnp.array_shapes(min_dims=1 if fmt is ROW else 0, max_dims=4, min_side=1, max_side=4)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), case=st.sampled_from(NUMERIC), fmt=st.sampled_from([ROW, COL]))
def test_numeric_tensors_round_trip(data: st.DataObject, case: Any, fmt: RequestFormat) -> None:
    dtype, numpy_type = case
    array = data.draw(hnp.arrays(numpy_type, shapes(fmt)))
    assert_same(round_trip({"y": array}, {"y": dtype}, fmt)["y"], array)


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    fmt=st.sampled_from([ROW, COL]),
    name=st.sampled_from(["s", "s_bytes"]),
    text=st.booleans(),
)
def test_string_tensors_round_trip(
    data: st.DataObject, fmt: RequestFormat, name: str, text: bool
) -> None:
    """Plain JSON strings (any bytes, invalid UTF-8 included) and b64 (`_bytes` names)."""
    items = st.text(max_size=6).map(str.encode) if text else st.binary(max_size=6)
    array = data.draw(hnp.arrays(object, shapes(fmt), elements=items))
    assert_same(round_trip({name: array}, {name: DType.DT_STRING}, fmt)[name], array)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), fmt=st.sampled_from([ROW, COL]), batch=st.integers(1, 3))
def test_several_tensors_round_trip(data: st.DataObject, fmt: RequestFormat, batch: int) -> None:
    """Row format needs the same 0-th dimension everywhere; columnar does not."""
    cases = data.draw(st.lists(st.sampled_from(NUMERIC), min_size=2, max_size=3))
    arrays: dict[str, npt.NDArray[Any]] = {}
    dtypes: dict[str, DType] = {}
    for index, (dtype, numpy_type) in enumerate(cases):
        shape = data.draw(shapes(fmt))
        if fmt is ROW:
            shape = (batch, *shape[1:])
        arrays[f"t{index}"] = data.draw(hnp.arrays(numpy_type, shape))
        dtypes[f"t{index}"] = dtype
    got = round_trip(arrays, dtypes, fmt)
    for name, array in arrays.items():
        assert_same(got[name], array)


@settings(max_examples=100, deadline=None)
@given(
    array=hnp.arrays(
        st.sampled_from([t for _, t in NUMERIC if t not in (np.float32, np.float64)]),
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
    )
)
def test_integer_and_bool_text_is_plain_json(array: npt.NDArray[Any]) -> None:
    """Written by orjson, they must read like TF Serving's "%d" / true / false, no spaces."""
    text = tensor_texts(array)[0]
    assert text == json.dumps(array.tolist(), separators=(",", ":"))
    rows = [json.dumps(row, separators=(",", ":")) for row in array.tolist()]
    assert tensor_texts(array, split_rows=True) == rows


# ------------------------------------------------------------------ fast path == exact walk

LEAVES = (
    st.floats(width=32)
    | st.floats()
    | st.integers(-(2**64), 2**65)
    | st.sampled_from([0, 1, 0.0, 1.0, -0.0, True, False, None, "", "a", {"b64": "AA=="}])
    | st.text(max_size=3)
)
DTYPES = st.sampled_from([dtype for dtype, _ in NUMERIC] + [DType.DT_STRING, DType.DT_HALF])


@st.composite
def regular_values(draw: st.DrawFn) -> object:
    """A regular nested list (sometimes with one leaf replaced by a list or a scalar)."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    kinds = draw(st.lists(LEAVES, min_size=1, max_size=3))
    count = math.prod(shape)
    leaves: list[object] = [draw(st.sampled_from(kinds)) for _ in range(count)]
    if leaves and draw(st.booleans()):
        leaves[draw(st.integers(0, count - 1))] = draw(LEAVES | st.just([1.0]))
    value: object = leaves[0] if not shape else leaves
    for size in reversed(shape[1:]):
        assert isinstance(value, list)
        value = [value[i : i + size] for i in range(0, len(value), size)] if size else []
    return value


@settings(max_examples=150, deadline=None)
@given(value=regular_values(), dtype=DTYPES)
def test_fast_path_agrees_with_the_exact_walk(value: object, dtype: DType) -> None:
    fast = fast_tensor(value, dtype)
    try:
        flat, shape = exact_values(value, dtype)
        exact = array_from_flat(flat, dtype, shape)
    except ServingError:
        assert fast is None
        return
    if fast is not None:
        assert_same(fast, exact)


# ------------------------------------------------------------------ depth scan

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(alphabet=st.sampled_from('[]{}"\\ab\x00é'), max_size=6)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=20,
)


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


@settings(max_examples=150, deadline=None)
@given(value=JSON_VALUES, ascii_only=st.booleans())
def test_depth_scan_equals_the_depth_of_the_document(value: object, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert nesting_depth(body) == depth_of(value)


# ------------------------------------------------------------------ no crashes

KEYS = st.sampled_from(
    ["instances", "inputs", "examples", "context", "signature_name", "b64", "a", "b"]
)
DOCUMENTS = st.recursive(
    JSON_SCALARS | st.builds(lambda s: {"b64": s}, st.text(max_size=8)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=25,
)
LIMITS = st.builds(JsonLimits, st.integers(1, 8), st.integers(0, 30), st.integers(0, 12)) | st.just(
    JsonLimits()
)


def decode_all(body: bytes, limits: JsonLimits, dtypes: list[DType]) -> None:
    """Everything a request body goes through; only ServingError may come out."""
    inputs = sig(**{f"i{n}": dtype for n, dtype in enumerate(dtypes)})
    with contextlib.suppress(ServingError):
        decode_predict(parse_body(body, limits), inputs, limits)
    with contextlib.suppress(ServingError):
        decode_examples(parse_body(body, limits), limits)


@settings(max_examples=150, deadline=None)
@given(
    doc=st.dictionaries(KEYS, DOCUMENTS, max_size=4),
    limits=LIMITS,
    dtypes=st.lists(st.sampled_from(list(DType)), min_size=0, max_size=2),
    cut=st.none() | st.integers(0, 200),
)
def test_arbitrary_documents_raise_only_serving_errors(
    doc: dict[str, object], limits: JsonLimits, dtypes: list[DType], cut: int | None
) -> None:
    body = json.dumps(doc).encode("utf-8", "surrogatepass")
    decode_all(body if cut is None else body[:cut], limits, dtypes)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=60), limits=LIMITS, dtype=st.sampled_from(list(DType)))
def test_arbitrary_bytes_raise_only_serving_errors(
    body: bytes, limits: JsonLimits, dtype: DType
) -> None:
    decode_all(body, limits, [dtype])
    decode_all(b'{"inputs": ' + body, limits, [dtype])
    decode_all(b'{"examples": [' + body, limits, [dtype])
