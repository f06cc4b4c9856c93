"""TensorProto <-> numpy, and the TensorFlow names used in TF Serving's messages."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2


def to_ndarray(proto: Any) -> np.ndarray:
    """Decodes a TensorProto (tensor_content or the typed *_val fields)."""
    return np.asarray(tf.make_ndarray(proto))


def to_proto(array: Any) -> Any:
    """Encodes an array; numeric and bool dtypes always go into packed tensor_content."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        return tf.make_tensor_proto(array)  # DT_STRING -> string_val
    proto = tensor_pb2.TensorProto(dtype=tf.as_dtype(array.dtype).as_datatype_enum)
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    proto.tensor_content = np.ascontiguousarray(array).tobytes()
    return proto


def dtype_name(array: np.ndarray) -> str:
    """DataType_Name of an array's dtype, e.g. "DT_FLOAT" (strings are DT_STRING)."""
    try:
        enum = tf.as_dtype(array.dtype).as_datatype_enum
    except TypeError:
        return "DT_INVALID"
    return str(types_pb2.DataType.Name(enum))


def shape_debug_string(array: np.ndarray) -> str:
    """TensorShape::DebugString: "[2,1]", "[]" for a scalar."""
    return "[" + ",".join(str(d) for d in array.shape) + "]"


def text_proto(message: Any) -> str:
    """The text format of a message, as C++ `DebugString()` prints it."""
    from google.protobuf import text_format

    return str(text_format.MessageToString(message))
