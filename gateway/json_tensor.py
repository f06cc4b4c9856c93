"""One JSON value -> one numpy tensor of a signature's dtype (spec P3, P6, B1).

`tensor_from_json` tries `fast_tensor` first: a check made only of C-level passes
(``set(map(type, ...))`` per nesting level, ``chain.from_iterable`` to descend) that
proves the value is a regular nested list of the right JSON token kinds, followed by one
numpy conversion. ``type(x)`` separates bool from int, which numpy alone would not.
Whenever that proof fails, `exact_values` walks the value like TF Serving's
FillTensorProto and raises its precise error (raggedness, level, size, type).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain

import numpy as np
import numpy.typing as npt

from clients.types import Code, DType, ServingError, invalid_argument
from gateway.json_values import (
    decode_b64_object,
    dtype_name,
    json_type_name,
    json_value_to_string,
    utf8,
)

_INT32 = (-(2**31), 2**31 - 1)
_RANGES: dict[DType, tuple[int, int]] = {
    DType.DT_INT32: _INT32,
    DType.DT_INT16: _INT32,  # TF Serving checks int32 only; TensorFlow truncates later
    DType.DT_INT8: _INT32,
    DType.DT_UINT8: _INT32,
    DType.DT_INT64: (-(2**63), 2**63 - 1),
    DType.DT_UINT32: (0, 2**32 - 1),
    DType.DT_UINT64: (0, 2**64 - 1),
}
NUMPY_DTYPES: dict[DType, np.dtype[np.generic]] = {
    DType.DT_FLOAT: np.dtype(np.float32),
    DType.DT_DOUBLE: np.dtype(np.float64),
    DType.DT_INT32: np.dtype(np.int32),
    DType.DT_INT16: np.dtype(np.int16),
    DType.DT_INT8: np.dtype(np.int8),
    DType.DT_UINT8: np.dtype(np.uint8),
    DType.DT_INT64: np.dtype(np.int64),
    DType.DT_UINT32: np.dtype(np.uint32),
    DType.DT_UINT64: np.dtype(np.uint64),
    DType.DT_BOOL: np.dtype(np.bool_),
    DType.DT_STRING: np.dtype(object),
    DType.DT_HALF: np.dtype(np.float16),
    DType.DT_UINT16: np.dtype(np.uint16),
    DType.DT_COMPLEX64: np.dtype(np.complex64),
    DType.DT_COMPLEX128: np.dtype(np.complex128),
}
_FLOATS = (DType.DT_FLOAT, DType.DT_DOUBLE)
MAX_RANK = 64  # numpy's limit (TensorFlow allows 254)
Shape = tuple[int, ...]


def tensor_from_json(value: object, dtype: DType) -> npt.NDArray[np.generic]:
    """Convert a JSON value (scalar or nested list) to a tensor of `dtype`."""
    fast = fast_tensor(value, dtype)
    if fast is not None:
        return fast
    flat, shape = exact_values(value, dtype)
    return array_from_flat(flat, dtype, shape)


def exact_values(value: object, dtype: DType) -> tuple[list[object], Shape]:
    """TF Serving's GetDenseTensorShape + FillTensorProto: row-major leaves and the shape."""
    shape = _dense_shape(value)
    rank = len(shape)
    convert = _leaf_converter(dtype)
    flat: list[object] = []
    stack: list[tuple[Iterator[object], int]] = [(iter((value,)), 0)]
    end = object()
    while stack:
        items, level = stack[-1]
        item = next(items, end)
        if item is end:
            stack.pop()
        elif isinstance(item, list):
            _check_list(item, level, shape)
            stack.append((iter(item), level + 1))
        elif level != rank:
            raise invalid_argument(
                f"JSON Value: {json_value_to_string(item)} found at incorrect level: "
                f"{level + 1} in the JSON DOM. Expected at level: {rank}"
            )
        else:
            flat.append(convert(item))
    return flat, shape


def array_from_flat(flat: list[object], dtype: DType, shape: Shape) -> npt.NDArray[np.generic]:
    """Build the tensor from already validated leaves (see `exact_values`)."""
    if len(shape) > MAX_RANK:
        raise invalid_argument(
            f"Cannot build a tensor of rank {len(shape)}: at most {MAX_RANK} dimensions "
            "are supported"
        )
    target = NUMPY_DTYPES.get(dtype, np.dtype(object))
    if dtype in _RANGES:
        return (
            np.array(flat, dtype=np.int64 if dtype != DType.DT_UINT64 else np.uint64)
            .astype(target)
            .reshape(shape)
        )
    array = np.empty(len(flat), dtype=target)
    with np.errstate(over="ignore"):
        array[:] = flat
    return array.reshape(shape)


def _dense_shape(value: object) -> Shape:
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _check_list(item: list[object], level: int, shape: Shape) -> None:
    if level >= len(shape):
        raise invalid_argument(
            f"Encountered list at unexpected level: {level} expected < {len(shape)}"
        )
    if len(item) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(item)} at level: {level} "
            f"expected size: {shape[level]}"
        )


def _leaf_converter(dtype: DType) -> Callable[[object], object]:
    def convert(item: object) -> object:
        if isinstance(item, dict):
            if dtype == DType.DT_STRING:
                return decode_b64_object(item)
            raise _type_error(item, dtype)
        return _convert_scalar(item, dtype)

    return convert


def _convert_scalar(item: object, dtype: DType) -> object:
    """AddValueToTensor: one non-object, non-list JSON value."""
    is_number = isinstance(item, (int, float)) and not isinstance(item, bool)
    if dtype in _FLOATS:
        if not is_number:
            raise _type_error(item, dtype)
        return float(item)  # type: ignore[arg-type]
    if dtype in _RANGES:
        low, high = _RANGES[dtype]
        if type(item) is not int or not low <= item <= high:
            raise _type_error(item, dtype)
        return item
    if dtype == DType.DT_BOOL:
        if not isinstance(item, bool):
            raise _type_error(item, dtype)
        return item
    if dtype == DType.DT_STRING:
        if not isinstance(item, str):
            raise _type_error(item, dtype)
        return utf8(item)
    raise ServingError(
        Code.UNIMPLEMENTED,
        f"Conversion of JSON Value: {json_value_to_string(item)} to type: {dtype_name(dtype)}",
    )


def _type_error(item: object, dtype: DType) -> ServingError:
    return invalid_argument(
        f"JSON Value: {json_value_to_string(item)} Type: {json_type_name(item)} "
        f"is not of expected type: {dtype_name(dtype)}"
    )


def fast_tensor(value: object, dtype: DType) -> npt.NDArray[np.generic] | None:
    """The tensor if `value` is certainly a valid regular one of `dtype`, else None."""
    target = NUMPY_DTYPES.get(dtype)
    if target is None:
        return None
    shape: list[int] = []
    level: list[object] = [value]
    try:
        while type(level[0]) is list:
            # Only strings survive being flattened as if they were lists (into characters
            # or dict keys), so other dtypes need no per-level type check: the leaf check
            # rejects the str leaves, and len() rejects numbers, bools and null.
            if dtype == DType.DT_STRING and set(map(type, level)) != {list}:
                return None
            lengths = set(map(len, level))  # type: ignore[arg-type]
            if len(lengths) != 1:
                return None
            shape.append(lengths.pop())
            if shape[-1] == 0:
                return np.empty(shape, dtype=target) if set(map(type, level)) == {list} else None
            level = list(chain.from_iterable(level))  # type: ignore[arg-type]
        leaves = _fast_leaves(level, set(map(type, level)), dtype)
    except (OverflowError, ValueError, TypeError):
        return None
    if leaves is None or len(shape) > MAX_RANK:
        return None
    return leaves.astype(target, copy=False).reshape(shape)


def _fast_leaves(
    leaves: list[object], kinds: set[type], dtype: DType
) -> npt.NDArray[np.generic] | None:
    if dtype in _FLOATS and kinds <= {int, float}:
        with np.errstate(over="ignore"):  # float32 overflow is +-inf, as in TF Serving
            return np.fromiter(leaves, dtype=NUMPY_DTYPES[dtype], count=len(leaves))
    if dtype == DType.DT_BOOL and kinds == {bool}:
        return np.array(leaves, dtype=np.bool_)
    if dtype == DType.DT_STRING and kinds == {str}:
        array = np.empty(len(leaves), dtype=object)
        array[:] = list(map(utf8, leaves))  # type: ignore[arg-type]
        return array
    if dtype in _RANGES and kinds == {int}:
        low, high = _RANGES[dtype]
        ints = np.array(leaves, dtype=np.uint64 if dtype == DType.DT_UINT64 else np.int64)
        if ints.size and (int(ints.min()) < low or int(ints.max()) > high):
            return None
        return ints
    return None
