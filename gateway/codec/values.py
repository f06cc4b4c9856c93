"""Parsed JSON values as TF Serving sees them: type names, b64 objects, debug text.

A parsed value is what `gateway.codec.reader.parse_body` returns: dict, list, str, int
(an integer token that fits int64/uint64), float (any other number, NaN and infinities
included), bool or None. Strings that held invalid UTF-8 carry it as surrogate escapes,
so ``text.encode("utf-8", "surrogateescape")`` gives back the bytes that were sent.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping

import numpy as np

from clients.types import DType, ServingError, invalid_argument
from gateway.codec.encode_numbers import format_float, rapidjson_double_text
from gateway.codec.limits import DEFAULT_LIMITS, JsonLimits

B64_KEY = "b64"
MAX_QUOTE_BYTES = 256  # error messages quote at most this much of the request JSON
_FLOAT32_RANGE = 3.4028234e38  # rapidjson's Value::IsFloat() bound
_INDENT = "    "
_JSON_ESCAPES = {i: f"\\u{i:04X}" for i in range(0x20)} | {
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
    ord('"'): '\\"',
    ord("\\"): "\\\\",
}
_B64_ALPHABET = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_B64_WHITESPACE = re.compile(r"[ \t\n\r\f\v]")


def signature_name_of(doc: Mapping[str, object]) -> str:
    """The request's optional `signature_name` ("" when absent); 400 if not a string."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument(
            f"JSON Value: {json_value_to_string(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


def format_error(doc: object, message: str) -> ServingError:
    """TF Serving's FormatError: the (cut) request JSON followed by `message`."""
    return invalid_argument(f"JSON Value: {json_value_to_string(doc)} {message}")


def utf8(text: str) -> bytes:
    """The bytes a parsed JSON string stood for (invalid UTF-8 included)."""
    return text.encode("utf-8", "surrogateescape")


def json_string(text: str) -> str:
    """A JSON string literal, escaped as rapidjson's Writer does (non-ASCII kept raw)."""
    return '"' + text.translate(_JSON_ESCAPES) + '"'


def json_type_name(value: object) -> str:
    """rapidjson's type of a parsed value: Null, False, True, Object, Array, String, Number."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def dtype_name(dtype: DType) -> str:
    """TensorFlow's DataTypeString, e.g. DT_FLOAT -> "float"."""
    return "INVALID" if dtype == DType.DT_INVALID else dtype.name[3:].lower()


def is_b64_object(value: object) -> bool:
    """A JSON object with exactly one member, "b64", whose value is a string."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(B64_KEY), str)


def decode_b64_object(value: object, limits: JsonLimits = DEFAULT_LIMITS) -> bytes:
    """Decode a b64 object as absl::Base64Unescape does; 400 on anything else."""
    if not is_b64_object(value):
        raise invalid_argument(
            f"JSON Value: {json_value_to_string(value)} not formatted correctly for base64 data"
        )
    assert isinstance(value, dict)
    limits.check_text(value[B64_KEY], "a base64 string")
    decoded = decode_base64(value[B64_KEY])
    if decoded is None:
        raise invalid_argument("Unable to base64 decode")
    limits.check_bytes(len(decoded), "a decoded base64 string")
    return decoded


def decode_base64(text: str) -> bytes | None:
    """Standard-alphabet base64; whitespace skipped; padding absent or exactly right."""
    data = _B64_WHITESPACE.sub("", text)
    if not _B64_ALPHABET.fullmatch(data):
        return None
    stripped = data.rstrip("=")
    padding = len(data) - len(stripped)
    if len(stripped) % 4 == 1 or (padding and len(data) % 4):
        return None
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def json_value_to_string(value: object) -> str:
    """TF Serving's JsonValueToString: rapidjson PrettyWriter text, cut to 256 bytes."""
    if isinstance(value, float):
        return _decimal_text(value)
    out: list[str] = []
    size = 0
    for chunk in _pretty_chunks(value):
        out.append(chunk)
        size += len(chunk)
        if size >= MAX_QUOTE_BYTES:  # chars >= bytes, so enough text is collected
            break
    return _cut_utf8("".join(out), MAX_QUOTE_BYTES)


def _decimal_text(value: float) -> str:
    """A decimal token is written as float when rapidjson's IsFloat() holds, else double."""
    in_float_range = -_FLOAT32_RANGE <= value <= _FLOAT32_RANGE
    return format_float(value, double=not in_float_range)


def _cut_utf8(text: str, limit: int) -> str:
    raw = utf8(text)
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")


def _scalar_text(value: object) -> str | None:
    """Writer text of a scalar inside a container; None where rapidjson's Writer fails."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return rapidjson_double_text(value) if np.isfinite(value) else None
    return json_string(str(value))


def _pretty_chunks(root: object) -> Iterator[str]:
    """Iterative PrettyWriter (4-space indent); stops where rapidjson stops (NaN/Inf)."""
    stack: list[tuple[Iterator[tuple[str | None, object]], str]] = []
    value = root
    while True:
        if isinstance(value, (dict, list)) and value:
            yield "{" if isinstance(value, dict) else "["
            stack.append(_members(value))
            first = True
        else:
            text = _scalar_text(value)
            if text is None:
                return
            yield text
        while stack:
            items, closer = stack[-1]
            member = next(items, None)
            if member is None:
                stack.pop()
                yield "\n" + _INDENT * len(stack) + closer
                continue
            key, value = member
            label = "" if key is None else json_string(key) + ": "
            yield ("\n" if first else ",\n") + _INDENT * len(stack) + label
            first = False
            break
        else:
            return


def _members(
    value: dict[str, object] | list[object],
) -> tuple[Iterator[tuple[str | None, object]], str]:
    if isinstance(value, dict):
        return iter(value.items()), "}"
    return ((None, item) for item in value), "]"
