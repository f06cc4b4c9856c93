"""An Open Inference Protocol (v2) infer request -> one tensor per signature input.

The body is JSON, or, with the binary tensor data extension, a JSON header of
`Inference-Header-Content-Length` bytes followed by the inputs' raw bytes in input order
(each input with a `binary_data_size` parameter). Fixed-width datatypes are little-endian
and row-major; BYTES elements are each a 4-byte little-endian length and the bytes.

`decode_infer` is pure and picklable, so a big body can be decoded in a worker process
(`gateway.offload`): the caller passes the addressed version's `V2Model`, and gets back
the signature the request selected with its tensors. Every refusal is INVALID_ARGUMENT
(HTTP 400) saying what to fix.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from math import prod
from typing import TypeGuard

import numpy as np

from clients.dtypes import BY_V2_NAME, V2_DATATYPES, v2_name_of
from clients.types import (
    DEFAULT_SIGNATURE,
    DType,
    ServingError,
    TensorSpec,
    invalid_argument,
    shape_fits,
)
from gateway.codec.decode_tensor import tensor_from_json
from gateway.codec.limits import ElementCount, JsonLimits
from gateway.codec.reader import parse_body
from gateway.oip.model import V2Model, V2Signature

Tensors = dict[str, np.ndarray]
_WIDENS_TO_FP64 = frozenset(name for name in V2_DATATYPES if name.startswith(("INT", "UINT", "FP")))
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class RequestedOutput:
    """An output the caller asked for (v2 name), and whether as binary data."""

    name: str
    binary: bool


@dataclass(frozen=True)
class DecodedInfer:
    """What an infer request asked for, decoded against the signature it selected."""

    request_id: str | None
    signature_name: str
    tensors: Tensors
    outputs: tuple[RequestedOutput, ...] | None  # None: every output of the signature
    binary_outputs: bool  # the request's `binary_data_output` parameter


def split_body(body: bytes, header_length: bytes | None) -> tuple[bytes, bytes]:
    """The JSON part and the binary part, by the `Inference-Header-Content-Length` value."""
    if header_length is None:
        return body, b""
    text = header_length.decode("latin-1").strip()
    if not text.isdigit():
        raise invalid_argument(
            f"Invalid Inference-Header-Content-Length {text[:40]!r}: expected the byte "
            "length of the JSON part of the body"
        )
    length = int(text)
    if length > len(body):
        raise invalid_argument(
            f"Inference-Header-Content-Length is {length} but the body has only {len(body)} bytes"
        )
    return body[:length], body[length:]


def decode_infer(
    body: bytes, header_length: bytes | None, model: V2Model, limits: JsonLimits
) -> DecodedInfer:
    """Parse an infer body and build the tensors of the signature it selects in `model`."""
    json_part, binary = split_body(body, header_length)
    try:
        document = parse_body(json_part, limits)
    except ServingError as error:
        if header_length is None:
            raise
        raise ServingError(
            error.code,
            f"The JSON header (the first {len(json_part)} bytes of the body, by "
            f"Inference-Header-Content-Length) is not valid JSON: {error.message}",
        ) from None
    if not isinstance(document, dict):
        raise invalid_argument("The infer request must be a JSON object with an 'inputs' list")
    parameters = _object(document.get("parameters"), "parameters")
    outputs = _requested_outputs(document.get("outputs"))
    signature_name = _signature_name(parameters, outputs, model)
    signature = model.signatures[signature_name]
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise invalid_argument("'inputs' must be a non-empty list of input tensors")
    tensors = _tensors(raw_inputs, binary, signature, model.name, limits)
    if outputs is not None:
        for output in outputs:
            if output.name not in signature.output_names:
                known = ", ".join(sorted(signature.output_names))
                raise invalid_argument(
                    f"Unknown output '{output.name}' for model {model.name}: it has {known}"
                )
    request_id = document.get("id")
    if request_id is not None and not _is_text(request_id):
        raise invalid_argument("'id' must be a string of valid UTF-8 (it is sent back)")
    return DecodedInfer(
        request_id,
        signature_name,
        tensors,
        outputs,
        parameters.get("binary_data_output") is True,
    )


def _is_text(value: object) -> TypeGuard[str]:
    """A str that holds no surrogate escape of invalid UTF-8, so JSON can carry it."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _object(value: object, what: str) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_argument(f"'{what}' must be a JSON object")
    return value


def _requested_outputs(value: object) -> tuple[RequestedOutput, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid_argument("'outputs' must be a list of {\"name\": ...} objects")
    requested = []
    for item in value:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise invalid_argument("Every requested output needs a string 'name'")
        parameters = _object(item.get("parameters"), "outputs[].parameters")
        requested.append(RequestedOutput(name, parameters.get("binary_data") is True))
    return tuple(requested)


def _signature_name(
    parameters: Mapping[str, object],
    outputs: tuple[RequestedOutput, ...] | None,
    model: V2Model,
) -> str:
    """The `signature_name` parameter, else the default signature, unless the requested
    outputs belong to another one only (MLServer's convention: output "predict_proba"
    picks that method of a scikit-learn model)."""
    named = parameters.get("signature_name")
    if named is not None:
        if not isinstance(named, str) or named not in model.signatures:
            known = ", ".join(sorted(model.signatures))
            raise invalid_argument(
                f"Unknown signature_name '{named}' for model {model.name}: it has {known}"
            )
        return named
    if outputs and DEFAULT_SIGNATURE in model.signatures:
        wanted = {output.name for output in outputs}
        if not wanted <= model.signatures[DEFAULT_SIGNATURE].output_names.keys():
            for name, signature in sorted(model.signatures.items()):
                if wanted <= signature.output_names.keys():
                    return name
    if DEFAULT_SIGNATURE not in model.signatures:
        raise invalid_argument(
            f"Model {model.name} has no {DEFAULT_SIGNATURE} signature: set the "
            "'signature_name' parameter"
        )
    return DEFAULT_SIGNATURE


def _tensors(
    raw_inputs: list[object],
    binary: bytes,
    signature: V2Signature,
    model_name: str,
    limits: JsonLimits,
) -> Tensors:
    """One tensor per signature input; the binary part is consumed in input order."""
    count = ElementCount(limits)
    aliases = _aliases(raw_inputs, signature, model_name)
    tensors: Tensors = {}
    offset = 0
    for raw, alias in zip(raw_inputs, aliases, strict=True):
        assert isinstance(raw, dict)  # checked by _aliases
        spec = signature.inputs[alias]
        name = raw["name"]
        shape = _shape(raw.get("shape"), name, limits)
        datatype = _datatype(raw.get("datatype"), name, spec)
        count.add(prod(shape))
        parameters = _object(raw.get("parameters"), "inputs[].parameters")
        size = parameters.get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0 or size > len(binary) - offset:
                raise invalid_argument(
                    f"Input '{name}': binary_data_size {size!r} must be a whole number of "
                    f"bytes within the {len(binary) - offset} binary bytes left in the body"
                )
            array = _from_binary(binary[offset : offset + size], datatype, shape, name, limits)
            offset += size
        elif "data" in raw:
            array = _from_json(raw["data"], datatype, shape, name)
        else:
            raise invalid_argument(f"Input '{name}' has neither 'data' nor binary_data_size")
        if datatype != v2_name_of(spec.dtype):
            array = array.astype(np.float64)  # a numeric input widened to FP64
        if spec.shape is not None and not shape_fits(tuple(shape), spec.shape):
            raise invalid_argument(
                f"Input '{name}' has shape {shape}, model {model_name} expects "
                f"{list(spec.shape)} (-1: any size)"
            )
        tensors[alias] = array
    if offset != len(binary):
        raise invalid_argument(
            f"The body has {len(binary) - offset} binary bytes that no input's "
            "binary_data_size accounts for"
        )
    return tensors


def _aliases(raw_inputs: list[object], signature: V2Signature, model_name: str) -> list[str]:
    """The signature input each request input feeds. A one-input signature takes a single
    input of any name (as MLServer does); otherwise names must match, all of them."""
    names = []
    for raw in raw_inputs:
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            raise invalid_argument("Every input must be an object with a string 'name'")
        names.append(name)
    expected = sorted(signature.inputs)
    if len(expected) == 1 and len(names) == 1:
        return expected
    if len(set(names)) != len(names) or sorted(names) != expected:
        raise invalid_argument(
            f"Model {model_name} takes inputs {expected}; the request has {names}"
        )
    return names


def _shape(value: object, name: str, limits: JsonLimits) -> list[int]:
    if not isinstance(value, list) or not all(type(size) is int and size >= 0 for size in value):
        raise invalid_argument(f"Input '{name}': 'shape' must be a list of sizes >= 0")
    limits.check_elements(prod(value), f"elements in input '{name}'")
    return value


def _datatype(value: object, name: str, spec: TensorSpec) -> str:
    expected = v2_name_of(spec.dtype)
    if value == expected or (expected == "FP64" and value in _WIDENS_TO_FP64):
        return expected if value == expected else str(value)
    if value not in V2_DATATYPES:
        raise invalid_argument(f"Input '{name}': unknown datatype {value!r}; expected {expected}")
    raise invalid_argument(f"Input '{name}' is {value}, the model expects {expected}")


def _from_json(data: object, datatype: str, shape: list[int], name: str) -> np.ndarray:
    """Flat or nested JSON data, with TF Serving's JSON type rules for the datatype."""
    dtype = BY_V2_NAME[datatype].dtype
    array = tensor_from_json(data if isinstance(data, list) else [data], dtype)
    if array.size != prod(shape):
        raise invalid_argument(
            f"Input '{name}': shape {shape} holds {prod(shape)} elements, 'data' has {array.size}"
        )
    return array.reshape(shape)


def _from_binary(
    data: bytes, datatype: str, shape: list[int], name: str, limits: JsonLimits
) -> np.ndarray:
    """Raw little-endian, row-major elements; BYTES as length-prefixed elements."""
    info = BY_V2_NAME[datatype]
    count = prod(shape)
    if info.dtype == DType.DT_STRING:
        return _bytes_elements(data, count, name, limits).reshape(shape)
    itemsize = info.numpy.itemsize
    if len(data) != count * itemsize:
        raise invalid_argument(
            f"Input '{name}': shape {shape} of {datatype} needs {count * itemsize} bytes, "
            f"binary_data_size is {len(data)}"
        )
    return np.frombuffer(data, dtype=info.numpy.newbyteorder("<")).astype(info.numpy).reshape(shape)


def _bytes_elements(data: bytes, count: int, name: str, limits: JsonLimits) -> np.ndarray:
    elements: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise invalid_argument(f"Input '{name}': a BYTES element's length is cut short")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if length > len(data) - offset:
            raise invalid_argument(
                f"Input '{name}': a BYTES element of {length} bytes passes the end of its data"
            )
        limits.check_bytes(length)
        elements.append(data[offset : offset + length])
        offset += length
    if len(elements) != count:
        raise invalid_argument(
            f"Input '{name}': its shape holds {count} elements, the binary data has {len(elements)}"
        )
    array = np.empty(count, dtype=object)
    array[:] = elements
    return array
