"""One table of tensor dtypes: TensorFlow's DataType, its numpy dtype, its OIP v2 name.

Every layer that maps dtypes (the JSON codec, the TensorProto codec, the scikit-learn
signatures, the v2 protocol) reads this table, so a dtype is added in one place.
DT_STRING is numpy's object dtype (elements are bytes or str) and v2's BYTES.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clients.types import DType


@dataclass(frozen=True)
class DTypeInfo:
    """One dtype as each layer spells it."""

    dtype: DType
    numpy: np.dtype[Any]
    v2_name: str


DTYPES: tuple[DTypeInfo, ...] = tuple(
    DTypeInfo(dtype, np.dtype(numpy_type), v2_name)
    for dtype, numpy_type, v2_name in (
        (DType.DT_BOOL, np.bool_, "BOOL"),
        (DType.DT_UINT8, np.uint8, "UINT8"),
        (DType.DT_UINT16, np.uint16, "UINT16"),
        (DType.DT_UINT32, np.uint32, "UINT32"),
        (DType.DT_UINT64, np.uint64, "UINT64"),
        (DType.DT_INT8, np.int8, "INT8"),
        (DType.DT_INT16, np.int16, "INT16"),
        (DType.DT_INT32, np.int32, "INT32"),
        (DType.DT_INT64, np.int64, "INT64"),
        (DType.DT_HALF, np.float16, "FP16"),
        (DType.DT_FLOAT, np.float32, "FP32"),
        (DType.DT_DOUBLE, np.float64, "FP64"),
        (DType.DT_STRING, object, "BYTES"),
        (DType.DT_COMPLEX64, np.complex64, "COMPLEX64"),  # no v2 datatype: named, refused
        (DType.DT_COMPLEX128, np.complex128, "COMPLEX128"),
    )
)
BY_DTYPE: dict[DType, DTypeInfo] = {info.dtype: info for info in DTYPES}
BY_NUMPY: dict[np.dtype[Any], DTypeInfo] = {info.numpy: info for info in DTYPES}
BY_V2_NAME: dict[str, DTypeInfo] = {info.v2_name: info for info in DTYPES}
# numpy dtype of each TF dtype; DT_STRING is object
NUMPY_OF: dict[DType, np.dtype[Any]] = {info.dtype: info.numpy for info in DTYPES}
# numpy dtype of each fixed-width TF dtype (no DT_STRING)
FIXED_WIDTH_NUMPY_OF: dict[DType, np.dtype[Any]] = {
    info.dtype: info.numpy for info in DTYPES if info.dtype != DType.DT_STRING
}
DTYPE_OF_FIXED_WIDTH: dict[np.dtype[Any], DType] = {
    numpy: dtype for dtype, numpy in FIXED_WIDTH_NUMPY_OF.items()
}
V2_DATATYPES: tuple[str, ...] = tuple(
    info.v2_name for info in DTYPES if not info.v2_name.startswith("COMPLEX")
)


def v2_name_of(dtype: DType) -> str:
    """The OIP v2 datatype of a TF dtype; an unmapped one keeps its TF name."""
    info = BY_DTYPE.get(dtype)
    return dtype.name if info is None else info.v2_name
