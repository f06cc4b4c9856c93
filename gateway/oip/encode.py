"""Outputs -> an Open Inference Protocol (v2) infer response, JSON or JSON + binary.

Data is flat and row-major. In JSON, numbers are orjson's shortest round-trip text for
their dtype (FP16 is written as its float32 value; NaN and infinities, which JSON cannot
hold, become null), and BYTES elements are UTF-8 text (bytes that are not UTF-8 are
replaced by U+FFFD: ask for binary data to get them exactly). An output asked for as
binary data carries `binary_data_size` instead of `data`; its bytes follow the JSON, in
output order, and `header_length` is the JSON's length for the
`Inference-Header-Content-Length` header. Pure and picklable, like the decoder.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import orjson

from clients.dtypes import BY_NUMPY, v2_name_of
from clients.types import Code, DType, ServingError
from gateway.oip.decode import RequestedOutput
from gateway.oip.model import V2Signature

_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class EncodedInfer:
    """The response body, and the JSON part's length when binary data follows it."""

    body: bytes
    header_length: int | None


def encode_infer(
    model_name: str,
    version: int,
    request_id: str | None,
    outputs: dict[str, np.ndarray],
    signature: V2Signature,
    requested: tuple[RequestedOutput, ...] | None,
    binary_outputs: bool,
) -> EncodedInfer:
    """The response to an infer request, with the outputs it asked for (else all)."""
    wanted = requested or tuple(
        RequestedOutput(name, binary_outputs) for name in sorted(signature.output_names)
    )
    documents: list[dict[str, object]] = []
    binary: list[bytes] = []
    for output in wanted:
        array = outputs[signature.output_names[output.name]]
        document: dict[str, object] = {
            "name": output.name,
            "datatype": _datatype(array),
            "shape": list(array.shape),
        }
        if output.binary or binary_outputs:
            data = _binary(array)
            document["parameters"] = {"binary_data_size": len(data)}
            binary.append(data)
        else:
            document["data"] = _json_data(array)
        documents.append(document)
    response: dict[str, object] = {"model_name": model_name, "model_version": str(version)}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = documents
    text = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary:
        return EncodedInfer(text, None)
    return EncodedInfer(text + b"".join(binary), len(text))


def _datatype(array: np.ndarray) -> str:
    if array.dtype == object or array.dtype.kind in "SU":
        return "BYTES"
    info = BY_NUMPY.get(array.dtype)
    if info is None or info.dtype in (DType.DT_COMPLEX64, DType.DT_COMPLEX128):
        raise ServingError(
            Code.UNIMPLEMENTED, f"Outputs of numpy type {array.dtype} have no v2 datatype"
        )
    return v2_name_of(info.dtype)


def _json_data(array: np.ndarray) -> object:
    flat = array.reshape(-1)
    if flat.dtype == object or flat.dtype.kind in "SU":
        return [_text(element) for element in flat.tolist()]
    if flat.dtype == np.float16:
        return flat.astype(np.float32)
    return np.ascontiguousarray(flat)


def _text(element: object) -> str:
    if isinstance(element, bytes):
        return element.decode("utf-8", "replace")
    return str(element)


def _binary(array: np.ndarray) -> bytes:
    if array.dtype == object or array.dtype.kind in "SU":
        pieces: list[bytes] = []
        for element in array.reshape(-1).tolist():
            data = element if isinstance(element, bytes) else str(element).encode()
            pieces += (_LENGTH.pack(len(data)), data)
        return b"".join(pieces)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
