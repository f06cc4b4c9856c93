"""numpy arrays <-> TF Serving's JSON tensors.

Requests: numeric and bool arrays become nested lists of JSON numbers (`NaN` and
`Infinity` as the bare tokens TF Serving accepts), `bytes` (and numpy `S` arrays, and
`bytes` inside object arrays) become `{"b64": "..."}`, `str` stays a JSON string. The
server takes each tensor's dtype from the model's signature, never from the JSON.

Answers: JSON numbers become float64 arrays (int64 when every value is an integer token,
bool for `true`/`false`), strings become object arrays of `str`, and `{"b64": ...}`
(outputs whose name ends in `_bytes`) object arrays of `bytes`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from ._errors import UnexpectedResponse

# What a single tensor may be given as: an array, a nested list, a scalar, bytes, str.
ArrayLike: TypeAlias = Any
# A predict answer: one array when the signature has one output, else one per output name.
Prediction: TypeAlias = NDArray[Any] | dict[str, NDArray[Any]]


def dumps(payload: object) -> bytes:
    """The request body: compact JSON, NaN and +-Infinity as bare tokens."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()


def loads(body: bytes) -> Any:
    """A JSON answer; TF Serving's bare `NaN`, `Infinity` and `-Infinity` are read too."""
    return json.loads(body)


def b64(data: bytes) -> dict[str, str]:
    """TF Serving's binary value: `{"b64": "<standard base64>"}`."""
    return {"b64": base64.b64encode(data).decode("ascii")}


def encode_value(value: ArrayLike) -> Any:
    """One tensor (or feature) as JSON-ready Python values."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return value.tolist()
        if value.dtype.kind in "SUO":
            return _encode_leaves(value.tolist())
        raise TypeError(f"arrays of dtype {value.dtype} have no TF Serving JSON form")
    return _encode_leaves(value)


def _encode_leaves(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b64(bytes(value))
    if isinstance(value, np.ndarray):
        return encode_value(value)
    if isinstance(value, np.generic):
        return _encode_leaves(value.item())
    if isinstance(value, (list, tuple)):
        return [_encode_leaves(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{type(value).__name__} has no TF Serving JSON form")


def encode_instances(instances: ArrayLike | Mapping[str, ArrayLike]) -> list[Any]:
    """`instances` of the row format: a batch (array, list) for a signature with one
    input, or a mapping from input name to batch, sent as one object per row."""
    if isinstance(instances, Mapping):
        columns = {str(name): encode_value(batch) for name, batch in instances.items()}
        sizes = {name: _batch_size(name, column) for name, column in columns.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"every input needs the same number of rows, got {sizes}")
        rows = next(iter(sizes.values()), 0)
        return [{name: column[i] for name, column in columns.items()} for i in range(rows)]
    encoded = encode_value(instances)
    if not isinstance(encoded, list):
        raise ValueError("instances must be a batch (a list or an array of rank >= 1)")
    return encoded


def _batch_size(name: str, column: Any) -> int:
    if not isinstance(column, list):
        raise ValueError(f"input {name!r} must be a batch (a list or an array of rank >= 1)")
    return len(column)


def encode_inputs(inputs: ArrayLike | Mapping[str, ArrayLike]) -> Any:
    """`inputs` of the columnar format: one tensor, or a mapping from input name to tensor."""
    if isinstance(inputs, Mapping):
        return {str(name): encode_value(tensor) for name, tensor in inputs.items()}
    return encode_value(inputs)


def encode_examples(examples: Sequence[Mapping[str, ArrayLike]]) -> list[dict[str, Any]]:
    """`examples` of classify and regress: each maps a feature to a value or a flat list.
    Floats (`2.0`) become float features, integers int64 features, bytes and str bytes
    features, as TF Serving maps them."""
    if isinstance(examples, Mapping):
        raise TypeError("examples must be a sequence of mappings (one per example)")
    return [{str(k): encode_value(v) for k, v in example.items()} for example in examples]


def is_b64(value: object) -> bool:
    """Whether `value` is TF Serving's binary object: exactly one member `b64`, a string."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def decode_tensor(value: Any, what: str = "tensor") -> NDArray[Any]:
    """A JSON tensor (a value or a nested list) as a numpy array."""
    try:  # the common case, numbers only: numpy reads the nested lists itself
        array = np.asarray(value)
    except (ValueError, OverflowError):  # ragged, or strings and b64 objects
        array = None
    if array is not None and array.dtype.kind in "biuf":
        return array
    decoded, kinds = _decode_leaves(value)
    try:
        if kinds & {str, bytes}:
            if kinds - {str, bytes}:
                raise ValueError("strings mixed with other values")
            return _object_array(decoded)
        if kinds - {bool, int, float}:
            raise ValueError(f"unexpected JSON values {sorted(k.__name__ for k in kinds)}")
        return np.asarray(decoded, dtype=np.float64 if float in kinds else None)
    except (ValueError, OverflowError) as error:
        raise UnexpectedResponse(200, f"cannot read {what} as an array: {error}") from None


def _object_array(nested: Any) -> NDArray[Any]:
    """An object array of the shape of `nested` whose items are the str/bytes leaves."""
    shape = []
    level = nested
    while isinstance(level, list):
        shape.append(len(level))
        if not level:
            break
        level = level[0]
    array = np.empty(tuple(shape), dtype=object)
    flat = _flatten(nested, len(shape))
    if len(flat) != array.size:
        raise ValueError("ragged nested lists")
    array.reshape(-1)[:] = flat
    return array


def _flatten(nested: Any, depth: int) -> list[Any]:
    if depth == 0:
        if isinstance(nested, list):
            raise ValueError("ragged nested lists")
        return [nested]
    if not isinstance(nested, list):
        raise ValueError("ragged nested lists")
    return [leaf for item in nested for leaf in _flatten(item, depth - 1)]


def _decode_leaves(value: Any) -> tuple[Any, set[type]]:
    """`value` with b64 objects decoded to bytes, and the types of its leaves."""
    if isinstance(value, list):
        kinds: set[type] = set()
        items = []
        for item in value:
            decoded, found = _decode_leaves(item)
            items.append(decoded)
            kinds |= found
        return items, kinds
    if is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True), {bytes}
        except binascii.Error as error:
            raise UnexpectedResponse(200, f"invalid base64 in the answer: {error}") from None
    return value, {type(value)}


def decode_predict(body: Any) -> Prediction:
    """`{"predictions": ...}` (row format) or `{"outputs": ...}` (columnar) as arrays."""
    if not isinstance(body, dict):
        raise UnexpectedResponse(200, "the predict answer is not a JSON object")
    if "predictions" in body:
        rows = body["predictions"]
        if not isinstance(rows, list):
            raise UnexpectedResponse(200, "'predictions' is not a list")
        if rows and all(isinstance(row, dict) and not is_b64(row) for row in rows):
            names = list(rows[0])
            if any(set(row) != set(names) for row in rows):
                raise UnexpectedResponse(200, "the rows of 'predictions' name other outputs")
            return {name: decode_tensor([row[name] for row in rows], name) for name in names}
        return decode_tensor(rows, "predictions")
    if "outputs" in body:
        outputs = body["outputs"]
        if isinstance(outputs, dict) and not is_b64(outputs):
            return {str(name): decode_tensor(value, name) for name, value in outputs.items()}
        return decode_tensor(outputs, "outputs")
    raise UnexpectedResponse(200, "the predict answer has neither 'predictions' nor 'outputs'")
