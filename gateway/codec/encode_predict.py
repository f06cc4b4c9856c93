"""The JSON body of a predict response (spec O1-O6) and of an error (E1).

Output names are written in sorted order (TF Serving iterates a hash map: unspecified).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from clients.types import invalid_argument
from gateway.codec.decode_predict import RequestFormat
from gateway.codec.encode_text import tensor_json
from gateway.codec.values import json_string

_BYTES_SUFFIX = "_bytes"
_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_predict(outputs: Mapping[str, npt.NDArray[np.generic]], fmt: RequestFormat) -> bytes:
    """`{"predictions": ...}` for a row request, `{"outputs": ...}` for a columnar one."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    arrays = {name: np.asarray(outputs[name]) for name in sorted(outputs)}
    if fmt is RequestFormat.ROW:
        if len(arrays) == 1 and _batch_size(arrays) == 1:  # one row: the tensor's own text
            name, array = next(iter(arrays.items()))
            return b"".join(
                (b'{"predictions": ', tensor_json(array, _as_b64(name, array), False)[0], b"}")
            )
        return b"".join((b'{"predictions": [', b", ".join(_prediction_rows(arrays)), b"]}"))
    return b"".join((b'{"outputs": ', _columnar_value(arrays), b"}"))


def encode_error(message: str) -> bytes:
    """`{"error": "<message>"}`, the message JSON-escaped; always valid UTF-8 JSON.

    Invalid UTF-8 quoted from the request (a surrogate escape) is written as the text
    `\\xff`, any other lone surrogate as `\\udXXX`: TF Serving writes such bytes raw, which
    makes its body invalid JSON.
    """
    return ('{"error": ' + json_string(_SURROGATE.sub(_escaped, message)) + "}").encode()


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def _as_b64(name: str, array: npt.NDArray[np.generic]) -> bool:
    """DT_STRING outputs whose alias ends in `_bytes` are written as {"b64": ...}."""
    return name.endswith(_BYTES_SUFFIX) and array.dtype.kind in {"O", "S", "U"}


def _columnar_value(arrays: dict[str, npt.NDArray[np.generic]]) -> bytes:
    texts = {name: tensor_json(a, _as_b64(name, a), False)[0] for name, a in arrays.items()}
    if len(texts) == 1:
        return next(iter(texts.values()))
    return b"{" + b", ".join(_label(name) + text for name, text in texts.items()) + b"}"


def _prediction_rows(arrays: dict[str, npt.NDArray[np.generic]]) -> list[bytes]:
    batch = _batch_size(arrays)
    rows = {name: tensor_json(a, _as_b64(name, a), True) for name, a in arrays.items()}
    if len(rows) == 1:
        return next(iter(rows.values()))
    labels = [_label(name) for name in rows]
    return [
        b"{"
        + b", ".join(label + texts[i] for label, texts in zip(labels, rows.values(), strict=True))
        + b"}"
        for i in range(batch)
    ]


def _label(name: str) -> bytes:
    """`"name": ` of an output in an object."""
    return (json_string(name) + ": ").encode("utf-8", "surrogateescape")


def _batch_size(arrays: dict[str, npt.NDArray[np.generic]]) -> int:
    """Every output needs rank >= 1 and the same 0-th dimension."""
    batch = -1
    for name, array in arrays.items():
        if array.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                f"expecting: {batch}"
            )
        batch = array.shape[0]
    return batch
