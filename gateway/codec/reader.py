"""Request body parsing as TF Serving does it: rapidjson, kParseNanAndInfFlag, stop when done.

`parse_body` first checks the nesting depth on the raw bytes (`gateway.codec.limits`), then
tries orjson (fast, C). Whatever orjson accepts, rapidjson accepts with the same values.
When orjson refuses (NaN/Infinity tokens, trailing bytes, a BOM, invalid
UTF-8 in strings, nesting deeper than 1024, or a real syntax error) the body is parsed
again by `_Reader`, an iterative (so any depth) re-implementation of rapidjson's reader
that reproduces its error messages and offsets.

Known differences, both kept because detecting them costs a scan of the whole body:
- duplicate keys: rapidjson's FindMember returns the first occurrence; `_Reader` keeps the
  first, orjson (used for every body it accepts) keeps the last;
- a zero written with an exponent above 308 (``0e400``): rapidjson says "Number too big",
  orjson reads 0.0.
Decimal tokens are read correctly rounded; rapidjson without kParseFullPrecisionFlag may
be one ulp off for inputs with more than ~17 significant digits.
"""

from __future__ import annotations

import math
import re

import orjson

from clients.types import invalid_argument
from gateway.codec.limits import DEFAULT_LIMITS, JsonLimits
from gateway.codec.values import json_value_to_string

_WHITESPACE = re.compile(rb"[ \t\n\r]*")
_DIGITS = re.compile(rb"[0-9]+")
_PLAIN_STRING = re.compile(rb'"([^"\\\x00-\x1f]*)"')
_STRING_RUN = re.compile(rb'[^"\\\x00-\x1f]+')
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
_SIMPLE_ESCAPES = {
    ord('"'): '"',
    ord("\\"): "\\",
    ord("/"): "/",
    ord("b"): "\b",
    ord("f"): "\f",
    ord("n"): "\n",
    ord("r"): "\r",
    ord("t"): "\t",
}
_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1
_FAST_PATH_SIGNIFICAND = 2**53 - 1

EMPTY = "The document is empty."
INVALID_VALUE = "Invalid value."
MISS_NAME = "Missing a name for object member."
MISS_COLON = "Missing a colon after a name of object member."
MISS_COMMA_OR_CURLY = "Missing a comma or '}' after an object member."
MISS_COMMA_OR_SQUARE = "Missing a comma or ']' after an array element."
BAD_HEX = "Incorrect hex digit after \\u escape in string."
BAD_SURROGATE = "The surrogate pair in string is invalid."
BAD_ESCAPE = "Invalid escape character in string."
MISS_QUOTE = "Missing a closing quotation mark in string."
BAD_ENCODING = "Invalid encoding in string."
TOO_BIG = "Number too big to be stored in double."
MISS_FRACTION = "Miss fraction part in number."
MISS_EXPONENT = "Miss exponent in number."


class _ParseError(Exception):
    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


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
        pass
    try:
        return _Reader(body).document()
    except _ParseError as error:
        raise invalid_argument(
            f"JSON Parse error: {error.reason} at offset: {error.offset}"
        ) from None


class _Reader:
    """rapidjson's GenericReader (kParseNanAndInfFlag | kParseStopWhenDoneFlag), iterative."""

    def __init__(self, data: bytes) -> None:
        self.data = data.split(b"\0", 1)[0]  # rapidjson's Peek() sees a NUL as the end
        self.pos = 0

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < len(self.data) else 0

    def consume(self, char: str) -> bool:
        if self.peek() == ord(char):
            self.pos += 1
            return True
        return False

    def skip_whitespace(self) -> None:
        match = _WHITESPACE.match(self.data, self.pos)
        self.pos = match.end() if match else self.pos

    def document(self) -> object:
        for byte in "\xef\xbb\xbf":  # EncodedInputStream<UTF8> skips a BOM byte by byte
            self.consume(byte)
        self.skip_whitespace()
        if self.peek() == 0:
            raise _ParseError(EMPTY, self.pos)
        return self.value()

    def value(self) -> object:
        """Parse one value; containers use an explicit stack instead of recursion."""
        stack: list[tuple[list[object] | dict[str, object], str | None]] = []
        while True:
            done: object
            if self.peek() in b"[{":
                container, key, empty = self.open_container()
                if not empty:
                    stack.append((container, key))
                    continue
                done = container
            else:
                done = self.scalar()
            while stack:
                container, key = stack[-1]
                self.store(container, key, done)
                closed, next_key = self.after_member(container)
                if not closed:
                    stack[-1] = (container, next_key)
                    break
                stack.pop()
                done = container
            else:
                return done

    def open_container(self) -> tuple[list[object] | dict[str, object], str | None, bool]:
        """Consume '[' or '{': (new container, its first key, whether it is already closed)."""
        is_array = self.peek() == ord("[")
        self.pos += 1
        self.skip_whitespace()
        if is_array:
            return [], None, self.consume("]")
        if self.consume("}"):
            return {}, None, True
        return {}, self.member_key(), False

    def store(
        self, container: list[object] | dict[str, object], key: str | None, item: object
    ) -> None:
        if isinstance(container, list):
            container.append(item)
        elif key is not None and key not in container:
            container[key] = item

    def after_member(self, container: list[object] | dict[str, object]) -> tuple[bool, str | None]:
        """After a member: (closed?, key of the next object member)."""
        self.skip_whitespace()
        if isinstance(container, list):
            if self.consume(","):
                self.skip_whitespace()
                return False, None
            if self.consume("]"):
                return True, None
            raise _ParseError(MISS_COMMA_OR_SQUARE, self.pos)
        if self.consume(","):
            self.skip_whitespace()
            return False, self.member_key()
        if self.consume("}"):
            return True, None
        raise _ParseError(MISS_COMMA_OR_CURLY, self.pos)

    def member_key(self) -> str:
        if self.peek() != ord('"'):
            raise _ParseError(MISS_NAME, self.pos)
        key = self.string()
        self.skip_whitespace()
        if not self.consume(":"):
            raise _ParseError(MISS_COLON, self.pos)
        self.skip_whitespace()
        return key

    def scalar(self) -> object:
        char = self.peek()
        if char == ord('"'):
            return self.string()
        for word, result in (("null", None), ("true", True), ("false", False)):
            if char == ord(word[0]):
                self.pos += 1
                if all(self.consume(letter) for letter in word[1:]):
                    return result
                raise _ParseError(INVALID_VALUE, self.pos)
        return self.number()

    def string(self) -> str:
        plain = _PLAIN_STRING.match(self.data, self.pos)
        if plain:
            self.pos = plain.end()
            return plain.group(1).decode("utf-8", "surrogateescape")
        self.pos += 1
        parts: list[str] = []
        while True:
            run = _STRING_RUN.match(self.data, self.pos)
            if run:
                parts.append(run.group().decode("utf-8", "surrogateescape"))
                self.pos = run.end()
            char = self.peek()
            if char == ord('"'):
                self.pos += 1
                return "".join(parts)
            if char == ord("\\"):
                parts.append(self.escape())
            elif char == 0:
                raise _ParseError(MISS_QUOTE, self.pos)
            else:
                raise _ParseError(BAD_ENCODING, self.pos)

    def escape(self) -> str:
        start = self.pos
        self.pos += 1
        simple = _SIMPLE_ESCAPES.get(self.peek())
        if simple is not None:
            self.pos += 1
            return simple
        if not self.consume("u"):
            raise _ParseError(BAD_ESCAPE, start)
        code = self.hex4(start)
        if 0xDC00 <= code <= 0xDFFF:
            raise _ParseError(BAD_SURROGATE, start)
        if 0xD800 <= code <= 0xDBFF:
            if not (self.consume("\\") and self.consume("u")):
                raise _ParseError(BAD_SURROGATE, start)
            low = self.hex4(start)
            if not 0xDC00 <= low <= 0xDFFF:
                raise _ParseError(BAD_SURROGATE, start)
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        return chr(code)

    def hex4(self, escape_start: int) -> int:
        match = _HEX4.match(self.data, self.pos)
        if not match:
            raise _ParseError(BAD_HEX, escape_start)
        self.pos = match.end()
        return int(match.group(), 16)

    def digits(self) -> str:
        match = _DIGITS.match(self.data, self.pos)
        if not match:
            return ""
        self.pos = match.end()
        return match.group().decode()

    def number(self) -> object:
        start = self.pos
        minus = self.consume("-")
        char = self.peek()
        special: float | None = None
        if char == ord("0"):
            self.pos += 1
            whole = "0"
        elif ord("1") <= char <= ord("9"):
            whole = self.digits()
        elif char in b"NI":
            special = self.nan_or_inf(minus)
            whole = "0"
        else:
            raise _ParseError(INVALID_VALUE, self.pos)
        fraction = self.fraction()
        exponent = self.exponent(start, whole, fraction, minus)
        sign = "-" if minus else ""
        if fraction is None and exponent is None:
            return special if special is not None else _integer_token(sign + whole, start)
        value = float(f"{sign}{whole}.{fraction or '0'}e{exponent or '0'}")
        if math.isinf(value):
            raise _ParseError(TOO_BIG, start)
        return value

    def nan_or_inf(self, minus: bool) -> float:
        if self.consume("N"):
            if self.consume("a") and self.consume("N"):
                return math.nan
        elif self.consume("I") and self.consume("n") and self.consume("f"):
            if self.peek() == ord("i") and not all(self.consume(c) for c in "inity"):
                raise _ParseError(INVALID_VALUE, self.pos)
            return -math.inf if minus else math.inf
        raise _ParseError(INVALID_VALUE, self.pos)

    def fraction(self) -> str | None:
        if not self.consume("."):
            return None
        digits = self.digits()
        if not digits:
            raise _ParseError(MISS_FRACTION, self.pos)
        return digits

    def exponent(self, start: int, whole: str, fraction: str | None, minus: bool) -> str | None:
        if not (self.consume("e") or self.consume("E")):
            return None
        negative = False if self.consume("+") else self.consume("-")
        digits = self.digits()
        if not digits:
            raise _ParseError(MISS_EXPONENT, self.pos)
        if not negative:
            limit = 308 - _fraction_exponent(whole, fraction or "", minus)
            significant = digits.lstrip("0")  # int() of > 4300 digits raises ValueError
            if len(significant) > len(str(limit)) or int(significant or "0") > limit:
                raise _ParseError(TOO_BIG, start)
        return ("-" if negative else "") + digits


def _integer_token(text: str, start: int) -> int | float:
    """rapidjson stores integer tokens beyond int64/uint64 as doubles."""
    if len(text) <= 21:  # sign and 20 digits hold int64/uint64; int() of > 4300 digits raises
        value = int(text)
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
    as_float = float(text)
    if math.isinf(as_float):
        raise _ParseError(TOO_BIG, start)
    return as_float


def _fraction_exponent(whole: str, fraction: str, minus: bool) -> int:
    """rapidjson's expFrac (<= 0): fraction digits it folded into the significand."""
    limit = 2**63 if minus else _UINT64_MAX
    taken = 1
    while taken < len(whole) and int(whole[: taken + 1]) <= limit:
        taken += 1
    significant = taken - 1
    exp_frac = 0
    rest = fraction
    if taken == len(whole):
        significand = int(whole)
        for index, digit in enumerate(fraction):
            if significand > _FAST_PATH_SIGNIFICAND:
                rest = fraction[index:]
                break
            significand = significand * 10 + int(digit)
            exp_frac -= 1
            significant += significand != 0
        else:
            rest = ""
        nonzero = significand != 0
    else:
        nonzero = True
    for digit in rest:
        if significant < 17:
            exp_frac -= 1
            nonzero = nonzero or digit != "0"
            significant += nonzero
    return exp_frac
