"""Conversions between numpy arrays / neutral types and TensorFlow Serving protos.

Numeric tensors travel packed in `tensor_content` (one memcpy instead of a proto
field per element); DT_STRING tensors use `string_val`, as TensorFlow requires.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from google.protobuf import json_format

from clients.dtypes import DTYPE_OF_FIXED_WIDTH, FIXED_WIDTH_NUMPY_OF
from clients.protos import (
    example_pb2,
    feature_pb2,
    get_model_status_pb2,
    input_pb2,
    meta_graph_pb2,
    tensor_pb2,
)
from clients.types import (
    Code,
    DType,
    Example,
    ExampleBatch,
    ModelState,
    ServingError,
    Signature,
    TensorSpec,
    VersionStatus,
)

# The repeated field that holds values when `tensor_content` is empty.
_VALUE_FIELD: dict[DType, str] = {
    DType.DT_FLOAT: "float_val",
    DType.DT_DOUBLE: "double_val",
    DType.DT_INT32: "int_val",
    DType.DT_UINT8: "int_val",
    DType.DT_INT16: "int_val",
    DType.DT_INT8: "int_val",
    DType.DT_UINT16: "int_val",
    DType.DT_INT64: "int64_val",
    DType.DT_BOOL: "bool_val",
    DType.DT_HALF: "half_val",
    DType.DT_UINT32: "uint32_val",
    DType.DT_UINT64: "uint64_val",
    DType.DT_COMPLEX64: "scomplex_val",
    DType.DT_COMPLEX128: "dcomplex_val",
}


def dtype_of_array(array: np.ndarray) -> DType:
    """The TF dtype of a numpy array: object/bytes arrays are DT_STRING."""
    if array.dtype == object or array.dtype.kind in ("S", "U"):
        return DType.DT_STRING
    try:
        return DTYPE_OF_FIXED_WIDTH[array.dtype]
    except KeyError:
        raise ServingError(
            Code.INVALID_ARGUMENT, f"Tensors of numpy type {array.dtype} cannot be sent"
        ) from None


def make_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """numpy -> TensorProto: packed `tensor_content` for numbers, `string_val` for bytes."""
    proto = tensor_pb2.TensorProto()
    fill_tensor_proto(proto, array)
    return proto


def fill_tensor_proto(proto: tensor_pb2.TensorProto, array: np.ndarray) -> None:
    """`make_tensor_proto` into an empty TensorProto already in place (such as
    ``request.inputs[alias]``), so the tensor is not built once and then copied."""
    dtype = dtype_of_array(array)
    proto.dtype = dtype
    dims = proto.tensor_shape.dim
    for size in array.shape:
        dims.add(size=size)
    if dtype == DType.DT_STRING:
        proto.string_val.extend(_as_bytes(value) for value in array.reshape(-1))
    else:
        proto.tensor_content = np.ascontiguousarray(array).tobytes()


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise ServingError(Code.INVALID_ARGUMENT, f"A string tensor holds a {type(value).__name__}")


def make_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """TensorProto -> numpy, from `tensor_content` or the typed value field.

    A value field shorter than the shape is padded with its last value, as TensorFlow does.
    """
    shape = tuple([dim.size for dim in proto.tensor_shape.dim])
    numpy_dtype = FIXED_WIDTH_NUMPY_OF.get(proto.dtype)  # an IntEnum key: the int finds it
    content = proto.tensor_content
    if content and numpy_dtype is not None:  # the usual case: one (writable) copy
        return np.frombuffer(bytearray(content), dtype=numpy_dtype).reshape(shape)
    dtype = DType(proto.dtype)
    count = math.prod(shape)
    if dtype == DType.DT_STRING:
        values = np.empty(len(proto.string_val), dtype=object)
        values[:] = list(proto.string_val)
        return _fill(values, count, np.dtype(object)).reshape(shape)
    if numpy_dtype is None:
        raise ServingError(Code.UNIMPLEMENTED, f"Tensors of type {dtype.name} are not supported")
    raw = getattr(proto, _VALUE_FIELD[dtype])
    if dtype == DType.DT_HALF:
        flat = np.array(raw, dtype=np.uint16).view(np.float16)
    elif dtype in (DType.DT_COMPLEX64, DType.DT_COMPLEX128):
        pairs = np.array(raw, dtype=np.float64).reshape(-1, 2)
        flat = (pairs[:, 0] + 1j * pairs[:, 1]).astype(numpy_dtype)
    else:
        flat = np.array(raw).astype(numpy_dtype)
    return _fill(flat, count, numpy_dtype).reshape(shape)


def _fill(flat: np.ndarray, count: int, dtype: np.dtype[Any]) -> np.ndarray:
    if len(flat) == count:
        return flat
    if len(flat) == 0:
        return np.zeros(count, dtype=dtype) if dtype.kind != "O" else np.full(count, b"", object)
    padded = np.empty(count, dtype=dtype)
    padded[: len(flat)] = flat[:count]
    padded[len(flat) :] = flat[-1]
    return padded


def signature_from_proto(proto: meta_graph_pb2.SignatureDef) -> Signature:
    """SignatureDef -> neutral Signature (defaults kept as their proto JSON)."""
    return Signature(
        inputs={alias: _tensor_spec(info) for alias, info in proto.inputs.items()},
        outputs={alias: _tensor_spec(info) for alias, info in proto.outputs.items()},
        method_name=proto.method_name,
        defaults={
            key: json_format.MessageToDict(tensor, preserving_proto_field_name=True)
            for key, tensor in proto.defaults.items()
        },
    )


def _tensor_spec(info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else tuple(dim.size for dim in shape.dim)
    return TensorSpec(name=info.name, dtype=DType(info.dtype), shape=dims)


def make_input(batch: ExampleBatch) -> input_pb2.Input:
    """ExampleBatch -> tensorflow_serving Input (example_list, or with context)."""
    examples = [_example_proto(example) for example in batch.examples]
    if batch.context is None:
        return input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples))
    return input_pb2.Input(
        example_list_with_context=input_pb2.ExampleListWithContext(
            examples=examples, context=_example_proto(batch.context)
        )
    )


def _example_proto(example: Example) -> example_pb2.Example:
    proto = example_pb2.Example()
    for name, feature in example.items():
        if not is_utf8(name):
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Feature name is not valid UTF-8: {name} (a tf.Example feature name is a "
                "protobuf string)",
            )
        target: feature_pb2.Feature = proto.features.feature[name]
        if feature.kind == "bytes":
            target.bytes_list.value.extend(feature.values)
        elif feature.kind == "float":
            target.float_list.value.extend(feature.values)
        elif feature.kind == "int64":
            target.int64_list.value.extend(feature.values)
        else:
            target.SetInParent()
    return proto


def is_utf8(text: str) -> bool:
    """False for text holding invalid UTF-8 from the request (as surrogate escapes)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def tensors_to_protos(tensors: Mapping[str, np.ndarray]) -> dict[str, tensor_pb2.TensorProto]:
    """Convert every array of a request."""
    return {alias: make_tensor_proto(array) for alias, array in tensors.items()}


def version_statuses(response: get_model_status_pb2.GetModelStatusResponse) -> list[VersionStatus]:
    """A GetModelStatusResponse's versions, newest first."""
    statuses = [
        VersionStatus(
            version=item.version,
            state=ModelState(item.state),
            error_code=Code(item.status.error_code),
            error_message=item.status.error_message,
        )
        for item in response.model_version_status
    ]
    return sorted(statuses, key=lambda status: status.version, reverse=True)
