"""The Open Inference Protocol (v2) `infer` call: numpy arrays as v2 JSON and back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import numpy as np
from numpy.typing import NDArray

from ._errors import UnexpectedResponse
from ._json import ArrayLike

# numpy dtype <-> v2 datatype; text and bytes are BYTES.
_DATATYPES: dict[np.dtype[Any], str] = {
    np.dtype(numpy_type): name
    for numpy_type, name in (
        (np.bool_, "BOOL"),
        (np.uint8, "UINT8"),
        (np.uint16, "UINT16"),
        (np.uint32, "UINT32"),
        (np.uint64, "UINT64"),
        (np.int8, "INT8"),
        (np.int16, "INT16"),
        (np.int32, "INT32"),
        (np.int64, "INT64"),
        (np.float16, "FP16"),
        (np.float32, "FP32"),
        (np.float64, "FP64"),
    )
}
_NUMPY_OF = {name: dtype for dtype, name in _DATATYPES.items()}


def infer_path(model: str, version: int | str | None) -> str:
    """`/v2/models/NAME[/versions/V]/infer` (a version label is a non-numeric V)."""
    if not isinstance(model, str) or not model:
        raise ValueError("model must be a non-empty string")
    path = f"/v2/models/{quote(model, safe='')}"
    if version is not None:
        if isinstance(version, bool) or not str(version):
            raise ValueError(f"version must be a number or a label, not {version!r}")
        path += f"/versions/{quote(str(version), safe='')}"
    return path + "/infer"


def encode_request(
    inputs: Mapping[str, ArrayLike],
    outputs: Sequence[str] | None,
    parameters: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The v2 request JSON: one input per array, its data flat and row-major."""
    if not isinstance(inputs, Mapping) or not inputs:
        raise ValueError("inputs must be a non-empty mapping from input name to array")
    tensors = [_input(str(name), value) for name, value in inputs.items()]
    payload: dict[str, Any] = {"inputs": tensors}
    if outputs is not None:
        payload["outputs"] = [{"name": name} for name in outputs]
    if parameters:
        payload["parameters"] = dict(parameters)
    return payload


def _input(name: str, value: ArrayLike) -> dict[str, Any]:
    array = np.asarray(value)
    if array.dtype.kind in "SUO":
        data: list[Any] = [_text(element) for element in array.reshape(-1).tolist()]
        datatype = "BYTES"
    elif array.dtype in _DATATYPES:
        datatype = _DATATYPES[array.dtype]
        data = array.reshape(-1).astype(np.float32 if datatype == "FP16" else array.dtype).tolist()
    else:
        raise ValueError(f"input {name!r}: numpy type {array.dtype} has no v2 datatype")
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


def _text(element: object) -> str:
    if isinstance(element, bytes):
        try:
            return element.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("BYTES elements in JSON must be UTF-8 text") from None
    return str(element)


def decode_response(body: Any) -> dict[str, NDArray[Any]]:
    """Every output of a v2 answer as an array of its datatype and shape, by name."""
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(outputs, list):
        raise UnexpectedResponse(200, "a v2 answer without an 'outputs' list", "")
    arrays: dict[str, NDArray[Any]] = {}
    for output in outputs:
        try:
            name, shape, datatype = output["name"], output["shape"], output["datatype"]
            data = output["data"]
        except (KeyError, TypeError):
            raise UnexpectedResponse(
                200, f"a v2 output is malformed: {output!r:.200}", ""
            ) from None
        if datatype == "BYTES":
            array = np.array([str(item).encode() for item in data], dtype=object)
        else:
            dtype = _NUMPY_OF.get(datatype)
            if dtype is None:
                raise UnexpectedResponse(200, f"unknown v2 datatype {datatype!r}", "")
            array = np.array([np.nan if item is None else item for item in data], dtype=dtype)
        arrays[name] = array.reshape(shape)
    return arrays
