"""One JSON value -> one numpy tensor of a signature's dtype (spec P3, P6, B1).

`tensor_from_json` tries the fast path first (`gateway.codec.decode_fast`: C-level passes that
prove the value is a regular nested list of the right JSON kinds). Whenever that proof
fails, `exact_values` walks the value like TF Serving's FillTensorProto and raises its
precise error (raggedness, level, size, type).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from math import prod

import numpy as np
import numpy.typing as npt

from clients.dtypes import NUMPY_OF
from clients.types import Code, DType, ServingError, invalid_argument
from gateway.codec.decode_fast import (
    FLOATS,
    MAX_RANK,
    RANGES,
    Shape,
    regular_rows,
    rows_to_array,
)
from gateway.codec.limits import DEFAULT_LIMITS, ElementCount, JsonLimits
from gateway.codec.values import (
    decode_b64_object,
    dtype_name,
    json_type_name,
    json_value_to_string,
    utf8,
)


def tensor_from_json(
    value: object, dtype: DType, count: ElementCount | None = None
) -> npt.NDArray[np.generic]:
    """Convert a JSON value (scalar or nested list) to a tensor of `dtype`.

    `count` (if given) is charged with the tensor's size before the array is allocated.
    """
    limits = count.limits if count is not None else DEFAULT_LIMITS
    regular = regular_rows(value, dtype)
    if regular is not None:
        shape, rows = regular
        if count is not None:
            count.add(prod(shape))
        fast = rows_to_array(rows, dtype, shape, limits)
        if fast is not None:
            return fast
        flat, shape = exact_values(value, dtype, limits)
    else:
        flat, shape = exact_values(value, dtype, limits)
        if count is not None:
            count.add(len(flat))
    return array_from_flat(flat, dtype, shape)


def exact_values(
    value: object, dtype: DType, limits: JsonLimits = DEFAULT_LIMITS
) -> tuple[list[object], Shape]:
    """TF Serving's GetDenseTensorShape + FillTensorProto: row-major leaves and the shape."""
    shape = _dense_shape(value)
    rank = len(shape)
    convert = _leaf_converter(dtype, limits)
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
    target = NUMPY_OF.get(dtype, np.dtype(object))
    if dtype in RANGES:
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


def _leaf_converter(dtype: DType, limits: JsonLimits) -> Callable[[object], object]:
    def convert(item: object) -> object:
        if isinstance(item, dict):
            if dtype == DType.DT_STRING:
                return decode_b64_object(item, limits)
            raise _type_error(item, dtype)
        converted = _convert_scalar(item, dtype)
        if isinstance(converted, bytes):
            limits.check_bytes(len(converted))
        return converted

    return convert


def _convert_scalar(item: object, dtype: DType) -> object:
    """AddValueToTensor: one non-object, non-list JSON value."""
    is_number = isinstance(item, (int, float)) and not isinstance(item, bool)
    if dtype in FLOATS:
        if not is_number:
            raise _type_error(item, dtype)
        return float(item)  # type: ignore[arg-type]
    if dtype in RANGES:
        low, high = RANGES[dtype]
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
