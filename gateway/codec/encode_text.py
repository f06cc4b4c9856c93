"""JSON text of a numpy tensor, written the way TF Serving writes values (spec O3, O4, O5).

Integer and bool tensors are written by orjson (its text is TF Serving's). Bigger float32
(and float16) tensors too: numpy rounds each value to its O5 decimal, orjson writes the
nearest doubles (their shortest text spells exactly those digits), and the few elements
orjson would spell otherwise are written by the printf pieces below and spliced in
(`gateway.codec.encode_numbers.float32_decimals`). Small float and string tensors (at most
`SMALL_TENSOR` elements, such as the one value of a one-row predict) are written element
by element in plain Python (`gateway.codec.encode_numbers.float_text`): numpy's fixed cost
per operation would be most of the work. For the others (float64, strings:
`template_texts`, also the reference the float32 path is tested against) the whole text
is produced by a single ``template % values``: every element gets a printf piece chosen by
numpy (see `gateway.codec.encode_numbers.float_format_codes`) joined with the brackets and
commas that follow it, so no Python function runs per element for numeric tensors. Row splitting
(one text per 0-th dimension slice, for the `predictions` list) uses a NUL marker between
slices; NUL never appears unescaped in JSON text. `tensor_json` gives the bytes the
response body is joined from (orjson's output is never decoded to `str` and back);
`tensor_texts` is the same as `str`.
"""

from __future__ import annotations

import base64

import numpy as np
import numpy.typing as npt
import orjson

from clients.types import invalid_argument
from gateway.codec.encode_numbers import (
    CONSUMES_VALUE,
    FORMATS,
    float32_decimals,
    float_format_codes,
    float_text,
)
from gateway.codec.values import json_string

_ROW_MARK = "\x00"
_LEAF_MARK = "\x00"
_FLOAT32_WRITTEN = {np.dtype(np.float32), np.dtype(np.float16)}
_INT_KINDS = {"i", "u"}
_ORJSON_KINDS = {"i", "u", "b"}
_UNWRITABLE = {np.dtype(np.uint16), np.dtype(np.complex64), np.dtype(np.complex128)}
Elements = tuple[tuple[str, ...], npt.NDArray[np.intp], list[object]]
# Up to this many elements the per-element path is the cheaper one (measured: 3 µs against
# 65 µs for one float32, 36-53 µs against 61-81 µs for 32; the two meet near 64).
SMALL_TENSOR = 32
_FEW_NULLS = 256  # `_splice_nulls` finds up to this many one by one


def tensor_texts(
    array: npt.NDArray[np.generic], *, b64: bool = False, split_rows: bool = False
) -> list[str]:
    """The tensor's nested JSON text, or (split_rows) one text per slice along axis 0."""
    return [text.decode("utf-8", "surrogateescape") for text in tensor_json(array, b64, split_rows)]


def tensor_json(array: npt.NDArray[np.generic], b64: bool, split_rows: bool) -> list[bytes]:
    """`tensor_texts` as the bytes of the response body (big tensors never become `str`)."""
    if array.ndim and array.dtype.kind in _ORJSON_KINDS and array.dtype not in _UNWRITABLE:
        return _orjson_texts(array, split_rows)
    if array.ndim and array.size > SMALL_TENSOR and array.dtype in _FLOAT32_WRITTEN:
        return _float32_texts(array, split_rows)
    texts = template_texts(array, b64=b64, split_rows=split_rows)
    return [text.encode("utf-8", "surrogateescape") for text in texts]


def template_texts(
    array: npt.NDArray[np.generic], *, b64: bool = False, split_rows: bool = False
) -> list[str]:
    """`tensor_texts` by one printf piece per element (any dtype; the reference for floats)."""
    inner = array.shape[1:] if split_rows else array.shape
    if array.size == 0:
        rows = array.shape[0] if split_rows else 1
        return [_empty_nested(inner)] * rows
    if array.size <= SMALL_TENSOR:
        leaves = _small_leaves(array.reshape(-1), b64)
        if leaves is not None:
            return _nest(leaves, inner)
    formats, codes, values = _elements(array.reshape(-1), b64)
    rank = len(inner)
    closes = _closing_brackets(inner, array.size)
    separators = ["]" * c + "," + "[" * c for c in range(rank)] + [
        "]" * rank + _ROW_MARK + "[" * rank
    ]
    table = np.array([[fmt + sep for sep in separators] for fmt in formats], dtype=object)
    pieces = table[codes, closes]
    pieces[-1] = formats[codes[-1]] + "]" * rank
    text = ("[" * rank + "".join(pieces.tolist())) % tuple(values)
    return text.split(_ROW_MARK) if split_rows else [text]


def _float32_texts(array: npt.NDArray[np.generic], split_rows: bool) -> list[bytes]:
    """float32 (and float16) tensors: orjson writes each O5 decimal as a double (see
    `gateway.codec.encode_numbers.float32_decimals`); the few it would spell differently
    are written as ``null`` and replaced by their printf text."""
    flat = np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    decimals, exact = float32_decimals(flat)
    text = orjson.dumps(decimals.reshape(array.shape), option=orjson.OPT_SERIALIZE_NUMPY)
    exact_at = np.flatnonzero(exact)
    if exact_at.size:
        text = _splice_nulls(text, _leaf_texts(flat[exact_at]))
    if not split_rows:
        return [text]
    if array.ndim == 1:
        return text[1:-1].split(b",")
    if array.shape[0] == 1:
        return [text[1:-1]]
    depth = array.ndim - 1  # a slice's own brackets; "]" * depth + "," only ends a slice
    opening, closing = b"[" * depth, b"]" * depth
    cores = text[array.ndim : -array.ndim].split(closing + b"," + opening)
    return [opening + core + closing for core in cores]


def _splice_nulls(written: bytes, texts: list[str]) -> bytes:
    """`written` (orjson's text of numbers) with its ``null`` tokens replaced by `texts`, in order.

    A few nulls are found one by one: the only ``n`` in such text is a null's, and a
    one-byte `bytes.find` is a memchr, where splitting at ``null`` scans the whole text at a
    fraction of that speed (bench/RESULTS.md, "Big tensors in the JSON codec"). Many are
    split at once: then the per-null Python step would cost more.
    """
    encoded = [text.encode("ascii") for text in texts]
    if len(texts) > _FEW_NULLS:
        pieces = written.split(b"null")
    else:
        pieces, start = [], 0
        for _ in texts:
            at = written.find(b"n", start)
            pieces.append(written[start:at])
            start = at + 4  # len("null")
        pieces.append(written[start:])
    merged = [b""] * (2 * len(pieces) - 1)
    merged[0::2] = pieces
    merged[1::2] = encoded
    return b"".join(merged)


def _leaf_texts(flat: npt.NDArray[np.generic]) -> list[str]:
    """Each element's text by the printf pieces of `_elements` (one ``%`` for all)."""
    formats, codes, values = _elements(flat, b64=False)
    template = _LEAF_MARK.join(np.array(formats, dtype=object)[codes].tolist())
    return (template % tuple(values)).split(_LEAF_MARK)


def _orjson_texts(array: npt.NDArray[np.generic], split_rows: bool) -> list[bytes]:
    """Integers and bools: orjson writes exactly TF Serving's text, in C."""
    native = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("="), copy=False)
    if not split_rows:
        return [orjson.dumps(native, option=orjson.OPT_SERIALIZE_NUMPY)]
    if native.ndim == 1:
        text = orjson.dumps(native, option=orjson.OPT_SERIALIZE_NUMPY)
        return text[1:-1].split(b",") if native.size else []
    return [orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) for row in native]


def _small_leaves(flat: npt.NDArray[np.generic], b64: bool) -> list[str] | None:
    """Each element's text, for the float and string tensors `_elements` writes; else None."""
    dtype = flat.dtype
    if dtype.kind == "f" and dtype.itemsize <= 8:
        double = dtype == np.float64
        values = flat.astype(np.float64 if double else np.float32, copy=False).tolist()
        return [float_text(value, double) for value in values]
    if dtype.kind in {"O", "S", "U"}:
        return [_string_text(item, b64) for item in flat.tolist()]
    return None


def _nest(leaves: list[str], shape: tuple[int, ...]) -> list[str]:
    """Element texts (C order) bracketed by `shape`: one text per slice of the leading
    dimensions left out of `shape` (a single text when `shape` is the whole shape)."""
    texts = leaves
    for size in reversed(shape):
        texts = ["[" + ",".join(texts[i : i + size]) + "]" for i in range(0, len(texts), size)]
    return texts


def _closing_brackets(inner: tuple[int, ...], count: int) -> npt.NDArray[np.intp]:
    """How many dimensions of `inner` each flat element completes."""
    position = np.arange(1, count + 1)
    closes = np.zeros(count, dtype=np.intp)
    block = 1
    for size in reversed(inner):
        block *= size
        closes += position % block == 0
    return closes


def _empty_nested(shape: tuple[int, ...]) -> str:
    if not shape:
        return ""  # unreachable for an empty tensor, kept for totality
    if shape[0] == 0:
        return "[]"
    return "[" + ",".join([_empty_nested(shape[1:])] * shape[0]) + "]"


def _elements(flat: npt.NDArray[np.generic], b64: bool) -> Elements:
    """(printf pieces, index of the piece per element, values consumed by the pieces)."""
    dtype = flat.dtype
    if dtype.kind == "f" and dtype.itemsize <= 8:
        floats = flat.astype(np.float64 if dtype == np.float64 else np.float32)
        codes = float_format_codes(floats).astype(np.intp)
        return FORMATS, codes, floats[CONSUMES_VALUE[codes]].tolist()
    zeros = np.zeros(flat.size, dtype=np.intp)
    if dtype.kind in _INT_KINDS and dtype not in _UNWRITABLE:
        return ("%d",), zeros, flat.tolist()
    if dtype.kind == "b":
        return ("false", "true"), flat.astype(np.intp), []
    if dtype.kind in {"O", "S", "U"}:
        return ("%s",), zeros, [_string_text(item, b64) for item in flat.tolist()]
    raise invalid_argument(f"Failed to write JSON value for tensor type: {_type_name(dtype)}")


def _string_text(item: object, b64: bool) -> str:
    if isinstance(item, str):
        item = item.encode("utf-8", "surrogateescape")
    if not isinstance(item, (bytes, bytearray)):
        raise invalid_argument("Failed to write JSON value for tensor type: string")
    if b64:
        return '{"b64": "' + base64.b64encode(item).decode("ascii") + '"}'
    return json_string(bytes(item).decode("utf-8", "surrogateescape"))


def _type_name(dtype: np.dtype[np.generic]) -> str:
    return str(dtype.name)
