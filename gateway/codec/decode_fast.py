"""The fast path of JSON value -> tensor: C-level passes only, no Python code per element.

`regular_rows` proves a value nests lists regularly (``set(map(len, ...))`` per level,
``chain.from_iterable`` to descend) and stops at the innermost lists, the "rows". Then
`rows_to_array` proves every leaf has the right JSON kind while converting it:

- floats: ``struct`` packs the numbers to float64 (it converts like ``float()`` but
  refuses strings, null, lists and objects); bools pass it as 0.0 or 1.0, so only the
  leaves equal to 0 or 1 get a type check. Long rows are packed one row per call
  (``starmap``), short ones after flattening;
- other dtypes: ``set(map(type, leaves))`` (``type(x)`` separates bool from int).

Anything unproven gives None, and the caller walks the value like TF Serving does
(`gateway.codec.decode_tensor.exact_values`) to raise its precise error.
"""

from __future__ import annotations

import struct
from itertools import chain, starmap
from operator import getitem
from typing import cast

import numpy as np
import numpy.typing as npt

from clients.dtypes import NUMPY_OF
from clients.types import DType
from gateway.codec.limits import DEFAULT_LIMITS, JsonLimits
from gateway.codec.values import utf8

_INT32 = (-(2**31), 2**31 - 1)
RANGES: dict[DType, tuple[int, int]] = {
    DType.DT_INT32: _INT32,
    DType.DT_INT16: _INT32,  # TF Serving checks int32 only; TensorFlow truncates later
    DType.DT_INT8: _INT32,
    DType.DT_UINT8: _INT32,
    DType.DT_INT64: (-(2**63), 2**63 - 1),
    DType.DT_UINT32: (0, 2**32 - 1),
    DType.DT_UINT64: (0, 2**64 - 1),
}
FLOATS = (DType.DT_FLOAT, DType.DT_DOUBLE)
MAX_RANK = 64  # numpy's limit (TensorFlow allows 254)
Shape = tuple[int, ...]
Rows = list[list[object]]
_PACK_PER_ROW = 8  # rows at least this long are packed one call per row
_SMALL = 64  # tensors up to this many numbers are type-checked leaf by leaf
_NUMBER_TYPES = frozenset({float, int})  # bool is its own type, so it is not let in
_FAILED = (OverflowError, ValueError, TypeError, struct.error)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def fast_tensor(
    value: object, dtype: DType, limits: JsonLimits = DEFAULT_LIMITS
) -> npt.NDArray[np.generic] | None:
    """The tensor if `value` is certainly a valid regular one of `dtype`, else None."""
    regular = regular_rows(value, dtype)
    if regular is None:
        return None
    shape, rows = regular
    return rows_to_array(rows, dtype, shape, limits)


def regular_rows(value: object, dtype: DType) -> tuple[Shape, Rows] | None:
    """(shape, rows) if `value` nests lists regularly, else None.

    The rows are the innermost lists in row-major order, each of length ``shape[-1]``
    (a scalar is one row of one); their items are not checked yet. No rows if the shape
    holds a 0.
    """
    if dtype not in NUMPY_OF:
        return None
    if type(value) is not list:
        return (), [[value]]
    shape: list[int] = []
    rows: list[object] = [value]
    try:
        while True:
            # Only strings survive being flattened as if they were lists (into characters
            # or dict keys), so other dtypes need no per-level type check: the leaf check
            # rejects the str leaves, and len() rejects numbers, bools and null.
            if dtype == DType.DT_STRING and set(map(type, rows)) != {list}:
                return None
            lengths = set(map(len, rows))  # type: ignore[arg-type]
            if len(lengths) != 1 or len(shape) == MAX_RANK:
                return None
            shape.append(lengths.pop())
            if shape[-1] == 0:
                return (tuple(shape), []) if set(map(type, rows)) == {list} else None
            if type(rows[0][0]) is not list:  # type: ignore[index]
                return tuple(shape), rows  # type: ignore[return-value]
            rows = list(chain.from_iterable(rows))  # type: ignore[arg-type]
    except TypeError:
        return None


def rows_to_array(
    rows: Rows, dtype: DType, shape: Shape, limits: JsonLimits = DEFAULT_LIMITS
) -> npt.NDArray[np.generic] | None:
    """The tensor from `regular_rows` output, or None unless every leaf certainly fits."""
    target = NUMPY_OF[dtype]
    if not rows:
        return np.empty(shape, dtype=target)
    try:
        flat = _floats(rows, dtype) if dtype in FLOATS else _others(rows, dtype)
    except _FAILED:
        return None
    if flat is None:
        return None
    if dtype == DType.DT_STRING:
        limits.check_bytes(max(map(len, flat.tolist())))
    return flat.astype(target, copy=False).reshape(shape)


def _others(rows: Rows, dtype: DType) -> npt.NDArray[np.generic] | None:
    leaves = list(chain.from_iterable(rows))
    kinds = set(map(type, leaves))
    if dtype == DType.DT_BOOL and kinds == {bool}:
        return np.array(leaves, dtype=np.bool_)
    if dtype == DType.DT_STRING and kinds == {str}:
        array = np.empty(len(leaves), dtype=object)
        array[:] = list(map(utf8, leaves))  # type: ignore[arg-type]
        return array
    if dtype in RANGES and kinds == {int}:
        low, high = RANGES[dtype]
        ints = np.array(leaves, dtype=np.uint64 if dtype == DType.DT_UINT64 else np.int64)
        if int(ints.min()) < low or int(ints.max()) > high:
            return None
        return ints
    return None


def _floats(rows: Rows, dtype: DType) -> npt.NDArray[np.generic] | None:
    """Numbers -> float64, then the dtype (as rapidjson's GetFloat and GetDouble do)."""
    if len(rows) * len(rows[0]) <= _SMALL:
        return _few_floats(rows, dtype)
    numbers = _many_numbers(rows)
    if numbers is None or dtype == DType.DT_DOUBLE:
        return numbers
    return doubles_to_float32(numbers)


def doubles_to_float32(numbers: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """float64 -> float32 as TF Serving casts a double (to nearest; beyond range +-inf)."""
    with np.errstate(over="ignore"):  # float32 overflow is +-inf, as in TF Serving
        return numbers.astype(np.float32)


def _few_floats(rows: Rows, dtype: DType) -> npt.NDArray[np.generic] | None:
    """A type check per leaf: cheaper than packing for a few numbers."""
    leaves = list(chain.from_iterable(rows))
    if not set(map(type, leaves)) <= _NUMBER_TYPES:
        return None
    numbers = np.array(leaves, dtype=np.float64)
    if dtype == DType.DT_DOUBLE:
        return numbers
    values = cast("list[float]", leaves)  # ints and floats only, as just checked
    if min(values) >= -_FLOAT32_MAX and max(values) <= _FLOAT32_MAX:
        return numbers.astype(np.float32)  # nothing overflows: numpy's errstate not needed
    return doubles_to_float32(numbers)


def _many_numbers(rows: Rows) -> npt.NDArray[np.float64] | None:
    """Packed by `struct` (which refuses non-numbers), then checked for bools among 0s and 1s."""
    width = len(rows[0])
    if width >= _PACK_PER_ROW:
        packed = bytearray().join(starmap(struct.Struct(f"{width}d").pack, rows))
    else:
        leaves = list(chain.from_iterable(rows))
        packed = bytearray(8 * len(leaves))
        struct.pack_into(f"{len(leaves)}d", packed, 0, *leaves)
    numbers = np.frombuffer(packed, dtype=np.float64)
    if _holds_bool(rows, width, np.flatnonzero((numbers == 0) | (numbers == 1))):
        return None
    return numbers


def _holds_bool(rows: Rows, width: int, suspects: npt.NDArray[np.intp]) -> bool:
    """Whether any leaf at the flat positions `suspects` (or, if many, anywhere) is a bool."""
    if suspects.size * 3 > len(rows) * width:
        return bool in set(map(type, chain.from_iterable(rows)))
    row_index, column = np.divmod(suspects, width)
    leaves = map(getitem, map(rows.__getitem__, row_index.tolist()), column.tolist())
    return bool in set(map(type, leaves))
