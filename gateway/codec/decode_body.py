"""A predict body read lazily: big numeric tensors go straight from the bytes to buffers.

`parse_predict` reads a body without building Python objects when it can prove the result
equals what the exact path (`parse_body` + `signature_name_of` + `decode_predict`) gives;
on any doubt it runs that exact path, which also raises every error. The proof, for a
body of at least `FAST_BODY_BYTES`:

- pysimdjson accepts the body (valid JSON, valid UTF-8, no NaN/Infinity tokens, no
  trailing bytes, no integer beyond uint64; such bodies orjson reads to the same values);
  a leading BOM goes the exact way (orjson refuses it, the exact reader skips it);
- the root object holds only ``signature_name`` (a string) and one of ``inputs`` /
  ``instances``, each key once; ``inputs`` is an array or an object of arrays, each key
  once; no key or string holds ``[``, ``]`` or ``,``;
- every array's leaves are numbers: ``Array.as_buffer`` copies them to int64 or float64
  (it raises on anything else, but it also flattens ragged arrays silently, hence:);
- every array is regular: its shape is read off the first element at each level (no 0),
  it holds that many numbers, and the body's ``[``, ``]`` and ``,`` (one
  ``bytes.translate``) are exactly those of such arrays in that order. Between two of
  these marks there is then exactly one number, except in ``[]``, which holds 0 or 1:
  the count makes it 1 everywhere;
- the nesting depth (now known) is within `JsonLimits.max_depth`.

`decode_predict_document` then makes the signature's tensors from the buffers when every
input is there with a float dtype (a float64, then cast like the exact path) or an
integer dtype whose range holds every value (the number tokens were all integers), and the
element count is within the limit; else it decodes the exact way. A `PredictDocument`
holds bytes, strings and numpy arrays only, so it pickles (it can cross to a worker).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from math import prod

import numpy as np
import numpy.typing as npt
import simdjson

from clients.dtypes import NUMPY_OF
from clients.types import DType, TensorSpec
from gateway.codec.decode_fast import FLOATS, MAX_RANK, RANGES, Shape, doubles_to_float32
from gateway.codec.decode_predict import RequestFormat, Tensors, decode_predict
from gateway.codec.limits import DEFAULT_LIMITS, JsonLimits
from gateway.codec.reader import parse_body
from gateway.codec.values import signature_name_of

# Below this size the exact path is cheaper than a second parser's fixed cost (measured:
# bench/RESULTS.md, "Big tensors in the JSON codec").
FAST_BODY_BYTES = 2048
_REUSED_PARSER_BYTES = 8 * 2**20  # bigger bodies get a parser of their own, freed after
_THREAD = threading.local()  # .parser: this thread's reused simdjson.Parser
_BOM = b"\xef\xbb\xbf"
_MARKS = b"[],"
_NOT_MARKS = bytes(sorted(set(range(256)) - set(_MARKS)))  # bytes.translate deletes these
_SIGNATURE_NAME = "signature_name"
_NUMBER_TYPES = (int, float)  # pysimdjson gives bool its own type


@dataclass(frozen=True)
class NumericTensor:
    """One regular nested array of numbers: its shape and its values in row-major order.

    `integers` when every token was an integer within int64, else `doubles`.
    """

    name: str | None
    shape: Shape
    doubles: npt.NDArray[np.float64] | None
    integers: npt.NDArray[np.int64] | None

    def as_dtype(self, dtype: DType) -> npt.NDArray[np.generic] | None:
        """The tensor as the exact path builds it for `dtype`, or None if that path differs."""
        if dtype in FLOATS:
            doubles = self.doubles if self.integers is None else self.integers.astype(np.float64)
            assert doubles is not None
            if dtype == DType.DT_DOUBLE:
                return doubles.reshape(self.shape).copy()  # the document's buffer stays its own
            return doubles_to_float32(doubles).reshape(self.shape)
        if dtype in RANGES and self.integers is not None:
            low, high = RANGES[dtype]
            if int(self.integers.min()) < low or int(self.integers.max()) > high:
                return None  # the exact path names the value
            return self.integers.astype(NUMPY_OF[dtype]).reshape(self.shape)
        return None


@dataclass(frozen=True)
class NumericRequest:
    """A predict body made of numeric tensors only (see the module docstring)."""

    signature_name: str
    request_format: RequestFormat
    plain: bool  # one tensor, not in an object: `instances`, or `inputs` as an array
    tensors: tuple[NumericTensor, ...]

    def signature_tensors(
        self, inputs: Mapping[str, TensorSpec], limits: JsonLimits
    ) -> Tensors | None:
        """The tensors `decode_predict` builds for `inputs`, or None if it might differ."""
        names = sorted(inputs)
        if self.plain:
            if len(names) != 1:
                return None
            chosen = {names[0]: self.tensors[0]}
        else:
            by_name = {tensor.name: tensor for tensor in self.tensors}
            if not all(name in by_name for name in names):
                return None
            chosen = {name: by_name[name] for name in names}
        if sum(prod(tensor.shape) for tensor in chosen.values()) > limits.max_elements:
            return None
        tensors: Tensors = {}
        for name, numeric in chosen.items():
            tensor = numeric.as_dtype(inputs[name].dtype)
            if tensor is None:
                return None
            tensors[name] = tensor
        return tensors


@dataclass(frozen=True)
class PredictDocument:
    """A parsed predict body: its signature name, and either buffers or parsed JSON."""

    body: bytes
    signature_name: str
    limits: JsonLimits
    numeric: NumericRequest | None
    parsed: dict[str, object] | None

    def parsed_body(self) -> dict[str, object]:
        """The body as `parse_body` returns it (parsed now if it was read as buffers)."""
        return self.parsed if self.parsed is not None else parse_body(self.body, self.limits)


def parse_predict(body: bytes, limits: JsonLimits = DEFAULT_LIMITS) -> PredictDocument:
    """Parse a predict body; the same errors, at the same point, as
    ``signature_name_of(parse_body(body, limits))``."""
    data = body if isinstance(body, bytes) else bytes(body)
    numeric = read_numeric_request(data, limits) if len(data) >= FAST_BODY_BYTES else None
    if numeric is not None:
        return PredictDocument(data, numeric.signature_name, limits, numeric, None)
    parsed = parse_body(data, limits)
    return PredictDocument(data, signature_name_of(parsed), limits, None, parsed)


def decode_predict_document(
    document: PredictDocument,
    signature_inputs: Mapping[str, TensorSpec],
    limits: JsonLimits = DEFAULT_LIMITS,
) -> tuple[Tensors, RequestFormat]:
    """`decode_predict` of the document: the same tensors, format and errors."""
    if document.numeric is not None:
        tensors = document.numeric.signature_tensors(signature_inputs, limits)
        if tensors is not None:
            return tensors, document.numeric.request_format
    return decode_predict(document.parsed_body(), signature_inputs, limits)


def read_numeric_request(body: bytes, limits: JsonLimits) -> NumericRequest | None:
    """The body's numeric tensors, or None unless it is certainly such a body."""
    if body.startswith(_BOM):
        return None
    try:
        root = _parser_for(len(body)).parse(body)
    except RuntimeError:  # too deep, a big integer, or the parser still in use: a new one
        _THREAD.parser = None
        return None
    except (ValueError, TypeError, MemoryError):  # UnicodeDecodeError included
        return None
    if not isinstance(root, simdjson.Object):
        return None
    keys = list(root.keys())
    if len(set(keys)) != len(keys) or ("inputs" in keys) == ("instances" in keys):
        return None
    signature_name = ""
    marks: list[bytes] = []
    request: tuple[RequestFormat, bool, list[NumericTensor]] | None = None
    for key in keys:
        value = root[key]  # each key once, so this is its only value
        if key == _SIGNATURE_NAME and isinstance(value, str) and _unmarked(value):
            signature_name = value
            marks.append(b"")
        elif key in ("inputs", "instances"):
            request = _read_tensors(key, value, marks)
        else:
            return None
    if request is None:
        return None
    request_format, plain, tensors = request
    depth = 1 + (not plain) + max(len(tensor.shape) for tensor in tensors)
    if depth > limits.max_depth or body.translate(None, _NOT_MARKS) != b",".join(marks):
        return None
    return NumericRequest(signature_name, request_format, plain, tuple(tensors))


def _parser_for(size: int) -> simdjson.Parser:
    """This thread's parser for a body of `size` bytes (a new one for a very big body).

    A parser keeps its buffers (about 2.5 times the biggest body it parsed) and reusing
    them saves page faults: 2.8 ms instead of 5.8 ms for a 3 MB body when other work
    runs in between. Its document is replaced by the next parse, so nothing parsed may
    outlive `read_numeric_request`: the buffers it returns are copies (``as_buffer``),
    and no await happens in between, so one parser per thread is enough.
    """
    if size > _REUSED_PARSER_BYTES:
        return simdjson.Parser()
    parser: simdjson.Parser | None = getattr(_THREAD, "parser", None)
    if parser is None:
        parser = _THREAD.parser = simdjson.Parser()
    return parser


def _read_tensors(
    key: str, value: object, marks: list[bytes]
) -> tuple[RequestFormat, bool, list[NumericTensor]] | None:
    """The tensors of `inputs` / `instances`; their marks are appended to `marks`."""
    if isinstance(value, simdjson.Array):
        tensor = _read_array(None, value, marks)
        request_format = RequestFormat.ROW if key == "instances" else RequestFormat.COLUMNAR
        return None if tensor is None else (request_format, True, [tensor])
    if key != "inputs" or not isinstance(value, simdjson.Object) or not len(value):
        return None
    names = list(value.keys())
    if len(set(names)) != len(names) or not all(map(_unmarked, names)):
        return None
    inner: list[bytes] = []
    tensors: list[NumericTensor] = []
    for name in names:
        item = value[name]
        tensor = _read_array(name, item, inner) if isinstance(item, simdjson.Array) else None
        if tensor is None:
            return None
        tensors.append(tensor)
    marks.append(b",".join(inner))
    return RequestFormat.COLUMNAR, False, tensors


def _read_array(
    name: str | None, array: simdjson.Array, marks: list[bytes]
) -> NumericTensor | None:
    shape = _declared_shape(array)
    if shape is None:
        return None
    integers: npt.NDArray[np.int64] | None = None
    doubles: npt.NDArray[np.float64] | None = None
    try:
        integers = np.frombuffer(array.as_buffer(of_type="i"), dtype=np.int64)
    except (TypeError, ValueError):  # a non-integer, or an integer beyond int64
        try:
            doubles = np.frombuffer(array.as_buffer(of_type="d"), dtype=np.float64)
        except (TypeError, ValueError):  # a string, bool, null or object
            return None
    size = (integers if integers is not None else doubles).size  # type: ignore[union-attr]
    if size != prod(shape):
        return None
    marks.append(_array_marks(shape))
    return NumericTensor(name, shape, doubles, integers)


def _declared_shape(value: object) -> Shape | None:
    """The shape read off the first element at each level; None if it holds a 0."""
    shape: list[int] = []
    while isinstance(value, simdjson.Array):
        if not len(value) or len(shape) == MAX_RANK:
            return None
        shape.append(len(value))
        value = value[0]
    return tuple(shape) if type(value) in _NUMBER_TYPES else None


@lru_cache(maxsize=64)  # a model's requests tend to repeat a few shapes
def _array_marks(shape: Shape) -> bytes:
    """The ``[``, ``]`` and ``,`` of a regular array of numbers of `shape`, in order."""
    text = b"[" + b"," * (shape[-1] - 1) + b"]"
    for size in reversed(shape[:-1]):
        text = b"[" + b",".join([text] * size) + b"]"
    return text


def _unmarked(text: str) -> bool:
    return "[" not in text and "]" not in text and "," not in text
