"""Request body parsing as TF Serving does it: rapidjson, kParseNanAndInfFlag, stop when done.

`parse_body` first checks the nesting depth on the raw bytes (`gateway.codec.limits`), then
tries orjson (fast, C). Whatever orjson accepts, rapidjson accepts with the same values.
When orjson refuses (NaN/Infinity tokens, trailing bytes, a BOM, invalid UTF-8, nesting
deeper than 1024, or a real syntax error) the body goes to python-rapidjson, the library
TF Serving parses with, which gives its `GetParseError_En` messages and offsets. Shims
cover what python-rapidjson does differently from TF Serving's call (and from what this
module returned before rapidjson replaced a hand-written reader):

- trailing data: python-rapidjson has no kParseStopWhenDoneFlag and says "The document
  root must not be followed by other values."; the value before that offset is parsed;
- a NUL byte ends the document (rapidjson's Peek() reads it as the end), so the body is
  cut there first, which also keeps bytes after it from failing the UTF-8 check;
- a UTF-8 BOM: TF Serving's EncodedInputStream<UTF8> skips the bytes EF, BB, BF (each one
  if present, in order); python-rapidjson reads them as "Invalid value." at offset 0. They
  are skipped here and counted in the offsets;
- invalid UTF-8: python-rapidjson decodes its input strictly (a UnicodeDecodeError),
  TF Serving's rapidjson copies the bytes. Each invalid byte is swapped for an astral code
  point the body does not use (4 bytes, which rapidjson reads like any byte above 0x7F),
  swapped back to its surrogate escape in the parsed strings, and offsets are mapped back;
- duplicate keys: python-rapidjson keeps the last; the first is kept (FindMember);
- numbers are read as text by python-rapidjson (correctly rounded doubles, integers of any
  size, ``-NaN`` as a negative NaN): an integer outside int64/uint64 becomes a double as
  rapidjson stores it, ``-NaN`` rapidjson's NaN (sign clear: it ignores the minus), and a
  number whose double is infinite (``1.8e308``, 400 digits) is "Number too big to be
  stored in double." at its offset, as is an integer over 4300 digits (which python-rapidjson
  refuses as "Invalid integer value");
- depth: python-rapidjson refuses nesting beyond Python's recursion limit and its reader
  recurses in C, so a body nesting `_DIRECT_PARSE_DEPTH` levels or more is parsed in a
  helper thread whose stack fits its depth, under a raised recursion limit.

Known differences, both kept because detecting them costs a scan of the whole body:
- duplicate keys: orjson (used for every body it accepts) keeps the last occurrence;
- a zero written with an exponent above 308 (``0e400``): rapidjson says "Number too big",
  orjson reads 0.0.
Decimal tokens are read correctly rounded; rapidjson without kParseFullPrecisionFlag may
be one ulp off for inputs with more than ~17 significant digits or large exponents.

Speed (bench/RESULTS.md, "JSON reader"): orjson.loads takes 0.44 of rapidjson.loads' time
on an 83-byte predict body (0.37 vs 0.84 µs) and 0.47 on a 2 MB numeric one (5.0 vs
10.6 ms), so it stays the first try; the fallback reads the 2 MB body with a NaN in 16 ms
(the hand-written reader took 425 ms).
"""

from __future__ import annotations

import math
import re
import sys
import threading
from dataclasses import dataclass

import orjson
import rapidjson

from clients.types import ServingError, invalid_argument
from gateway.codec.limits import DEFAULT_LIMITS, JsonLimits, nesting_depth
from gateway.codec.values import json_value_to_string

_TOO_BIG = "Number too big to be stored in double."
_ROOT_NOT_SINGULAR = "The document root must not be followed by other values."
_INTEGER_TOO_LONG = "Invalid integer value"  # python-rapidjson: int() refused > 4300 digits
_RAPIDJSON_ERROR = re.compile(r"Parse error at offset (\d+): (.*)", re.DOTALL)
_BOM = b"\xef\xbb\xbf"
_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1

_DIRECT_PARSE_DEPTH = 512  # nesting any thread's stack and the recursion limit allow
_STACK_BYTES_PER_LEVEL = 128  # rapidjson's recursive reader uses about 48 (measured)
_STACK_FLOOR_BYTES = 8 * 2**20
_DEEP_PARSE_LOCK = threading.Lock()  # the recursion limit and thread stack size are global

_SURROGATE_ESCAPE = re.compile("[\udc80-\udcff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_ESCAPED_ASTRAL = re.compile(rb"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789E", b"000000000e")  # for `_may_need_double`
_BIG_EXPONENT_SHAPE = re.compile(rb"e\+?000")
_LONG_NUMBER = rb"[0-9]{19,}(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"  # 19 or more integer digits
_BIG_EXPONENT = rb"[0-9]+(?:\.[0-9]+)?[eE]\+?[0-9]{3,}"
_STRING_OR_LONG_NUMBER = re.compile(  # a number is whole: no digit, '.', '+', '-' around it
    rb'"[^"\\]*(?:\\.[^"\\]*)*"?|(?<![0-9A-Za-z_.+-])-?(?:%s|%s)(?![0-9.eE+-])'
    % (_LONG_NUMBER, _BIG_EXPONENT),
    re.DOTALL,
)


def parse_body(body: bytes, limits: JsonLimits = DEFAULT_LIMITS) -> dict[str, object]:
    """Parse a request body; 400 with TF Serving's message if invalid or not an object.

    Also 400 if it nests deeper than `limits.max_depth` (checked before parsing).
    """
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    data = body if isinstance(body, bytes) else bytes(body)
    limits.check_depth(data)
    doc = _parse_value(data)
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {json_value_to_string(doc)} Is not object")
    return doc


def _parse_value(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass  # not inside the except: python-rapidjson's messages lose the offset there
    return _parse_with_rapidjson(body)


class _FirstKeyWins(rapidjson.Decoder):
    """NM_NAN decoding whose objects keep a repeated key's first value (FindMember)."""

    def start_object(self) -> list[tuple[str, object]]:
        return []

    def end_object(self, pairs: list[tuple[str, object]]) -> dict[str, object]:
        mapping = dict(pairs)
        if len(mapping) < len(pairs):
            mapping = {}
            for key, value in pairs:
                mapping.setdefault(key, value)
        return mapping


class _RestoresInvalidUtf8(_FirstKeyWins):
    """`_FirstKeyWins` that turns placeholder code points back into surrogate escapes."""

    restore: dict[int, str]

    def string(self, text: str) -> str:
        return text.translate(self.restore)

    def end_object(self, pairs: list[tuple[str, object]]) -> dict[str, object]:
        return super().end_object([(key.translate(self.restore), value) for key, value in pairs])


_DECODER = _FirstKeyWins(number_mode=rapidjson.NM_NAN)


@dataclass(frozen=True)
class _Source:
    """The body as rapidjson is given it: valid UTF-8, invalid bytes as placeholders."""

    utf8: bytes
    restore: dict[int, str]  # placeholder code point -> surrogate escape of its byte

    def body_offset(self, offset: int) -> int:
        """The offset in the body of `offset` in `utf8` (each placeholder is 4 bytes for 1)."""
        prefix = self.utf8[:offset]
        return offset - 3 * sum(prefix.count(chr(code).encode()) for code in self.restore)

    def decoder(self) -> _FirstKeyWins:
        """The decoder for this text: one that restores the invalid bytes if it has any."""
        if not self.restore:
            return _DECODER
        decoder = _RestoresInvalidUtf8(number_mode=rapidjson.NM_NAN)
        decoder.restore = self.restore
        return decoder


def _parse_with_rapidjson(body: bytes) -> object:
    """TF Serving's value or error for a body orjson refused (see the module docstring)."""
    data = body.split(b"\0", 1)[0]
    skipped = 0
    for byte in _BOM:
        skipped += data[skipped : skipped + 1] == bytes([byte])
    source = _source_of(data[skipped:])
    try:
        value, end = _first_value(source)
    except ValueError as error:  # rapidjson.JSONDecodeError, or python-rapidjson's int()
        offset, reason = _offset_and_reason(error, len(source.utf8))
        too_big, _ = _scan_long_numbers(source.utf8[:offset])
        if too_big is not None or reason == _INTEGER_TOO_LONG:
            offset, reason = (offset if too_big is None else too_big), _TOO_BIG
        raise _parse_error(reason, skipped + source.body_offset(offset)) from None
    too_big, needs_double = _scan_long_numbers(source.utf8[:end])
    if too_big is not None:
        raise _parse_error(_TOO_BIG, skipped + source.body_offset(too_big))
    if needs_double or b"-NaN" in source.utf8[:end]:
        return _as_rapidjson_numbers(value)
    return value


def _parse_error(reason: str, offset: int) -> ServingError:
    return invalid_argument(f"JSON Parse error: {reason} at offset: {offset}")


def _offset_and_reason(error: Exception, text_length: int) -> tuple[int, str]:
    """python-rapidjson's offset and reason; a chained int() error has no offset."""
    match = _RAPIDJSON_ERROR.fullmatch(str(error))
    if match is not None:
        return int(match.group(1)), match.group(2)
    if str(error) == _INTEGER_TOO_LONG:  # raised while another exception was handled
        return text_length, _INTEGER_TOO_LONG  # the number scan finds the token
    raise error


def _source_of(data: bytes) -> _Source:
    """`data` as valid UTF-8: each invalid byte becomes a code point `data` does not use."""
    if data.isascii():
        return _Source(data, {})
    try:
        data.decode("utf-8")
        return _Source(data, {})
    except UnicodeDecodeError:
        text = data.decode("utf-8", "surrogateescape")
    escapes = sorted(set(_SURROGATE_ESCAPE.findall(text)))
    taken = {ord(char) for char in _ASTRAL.findall(text)}
    for high, low in _ESCAPED_ASTRAL.findall(data):
        taken.add(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))
    unused = (code for code in range(0x10FFFF, 0xFFFF, -1) if code not in taken)
    placeholders = dict(zip(escapes, unused, strict=False))
    if len(placeholders) < len(escapes):
        raise invalid_argument("JSON Parse error: too many distinct characters to parse")
    swap = {ord(escape): code for escape, code in placeholders.items()}
    restore = {code: escape for escape, code in placeholders.items()}
    return _Source(text.translate(swap).encode("utf-8"), restore)


def _first_value(source: _Source) -> tuple[object, int]:
    """The first JSON value and where it ends: kParseStopWhenDoneFlag on python-rapidjson."""
    depth = nesting_depth(source.utf8)
    decoder = source.decoder()
    try:
        return _decode(decoder, source.utf8, depth), len(source.utf8)
    except rapidjson.JSONDecodeError as error:
        offset, reason = _offset_and_reason(error, len(source.utf8))
        if reason != _ROOT_NOT_SINGULAR:
            raise
    return _decode(decoder, source.utf8[:offset], depth), offset


def _decode(decoder: _FirstKeyWins, text: bytes, depth: int) -> object:
    if depth < min(_DIRECT_PARSE_DEPTH, sys.getrecursionlimit() - 64):
        return decoder(text)
    return _decode_in_deep_thread(decoder, text, depth)


def _decode_in_deep_thread(decoder: _FirstKeyWins, text: bytes, depth: int) -> object:
    """Decode in a thread with a stack for `depth` levels, the recursion limit raised."""
    results: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(decoder(text))
        except BaseException as error:  # re-raised in the caller's thread
            errors.append(error)

    stack_bytes = _STACK_FLOOR_BYTES + depth * _STACK_BYTES_PER_LEVEL
    with _DEEP_PARSE_LOCK:
        recursion_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(recursion_limit, depth + 64))
        try:
            whole_mib = -(-stack_bytes // 2**20) * 2**20
            previous_stack = threading.stack_size(whole_mib)
            try:
                thread = threading.Thread(target=run, name="deep-json", daemon=True)
                thread.start()
            finally:
                threading.stack_size(previous_stack)
            thread.join()
        except (RuntimeError, ValueError, MemoryError):
            raise invalid_argument(
                f"Request nests JSON {depth} levels deep, more than this machine can parse"
            ) from None
        finally:
            sys.setrecursionlimit(recursion_limit)
    if errors:
        raise errors[0]
    return results[0]


def _scan_long_numbers(text: bytes) -> tuple[int | None, bool]:
    """(offset of the first number too big for a double, whether an integer needs one).

    `text` must be valid JSON up to its end, so its strings and numbers are found in step.
    """
    if not _may_need_double(text):
        return None, False
    needs_double = False
    for match in _STRING_OR_LONG_NUMBER.finditer(text):
        token = match.group()
        if token.startswith(b'"'):
            continue
        is_integer = not any(mark in token for mark in b".eE")
        if is_integer and len(token) <= 21 and _INT64_MIN <= int(token) <= _UINT64_MAX:
            continue
        if math.isinf(float(token)):
            return match.start(), needs_double
        needs_double = needs_double or is_integer
    return None, needs_double


def _may_need_double(text: bytes) -> bool:
    """Quick test for the scan: a run of 19 digits or a 3-digit positive exponent anywhere."""
    shapes = text.translate(_DIGITS_AS_ZERO)
    return b"0" * 19 in shapes or _BIG_EXPONENT_SHAPE.search(shapes) is not None


def _as_rapidjson_numbers(value: object) -> object:
    """`value` with rapidjson's numbers (iterative): see `_as_rapidjson_number`."""
    if not isinstance(value, list | dict):
        return _as_rapidjson_number(value)
    pending: list[list[object] | dict[str, object]] = [value]
    while pending:
        container = pending.pop()
        if isinstance(container, list):
            for index, item in enumerate(container):
                container[index] = _as_rapidjson_number(item)
                if isinstance(item, list | dict):
                    pending.append(item)
        else:
            for key, item in container.items():
                container[key] = _as_rapidjson_number(item)
                if isinstance(item, list | dict):
                    pending.append(item)
    return value


def _as_rapidjson_number(value: object) -> object:
    """An integer outside int64/uint64 as a double; any NaN as rapidjson's (sign clear)."""
    if type(value) is int and not _INT64_MIN <= value <= _UINT64_MAX:
        return float(value)
    if type(value) is float and value != value:  # python-rapidjson reads -NaN as negative
        return math.nan
    return value
