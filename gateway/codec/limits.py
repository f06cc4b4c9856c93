"""Input limits of the JSON codec: nesting depth, element count, string size.

TF Serving has none of these (it accepts 500 000 levels of nesting); the gateway checks
them so hostile input gets a 400 naming the setting to raise, not a 500 or an OOM.
The depth is measured on the raw bytes before parsing (`nesting_depth`): one C pass
(``bytes.translate``) keeps only brackets and quotes, then numpy counts levels, so it
costs a small fraction of parsing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from clients.types import invalid_argument

if TYPE_CHECKING:
    from gateway.settings import Settings

_ESCAPED = re.compile(rb"\\.", re.DOTALL)
_LEADING = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\n\r]*")  # rapidjson skips a BOM, then spaces
_NOT_MARKS = bytes(set(range(256)) - set(b'[]{}"'))  # bytes.translate deletes these
_OPEN, _QUOTE = 0x7B, 0x22  # '{' (and '[' once OR-ed with 0x20), '"'
_CASE_BIT = 0x20


@dataclass(frozen=True)
class JsonLimits:
    """What one request may hold; a breach is a 400 naming the setting that raises it."""

    max_depth: int = 64
    max_elements: int = 16 * 2**20
    max_string_bytes: int = 16 * 2**20

    @classmethod
    def from_settings(cls, settings: Settings) -> JsonLimits:
        """The limits configured in the gateway's settings."""
        return cls(
            max_depth=settings.max_json_depth,
            max_elements=settings.max_tensor_elements,
            max_string_bytes=settings.max_string_bytes,
        )

    def check_depth(self, body: bytes) -> None:
        """400 if the body's JSON nests deeper than `max_depth` (see `nesting_depth`)."""
        if len(body) <= self.max_depth:
            return  # too short to nest deeper
        marks = _marks(body)
        if marks.count(b"[") + marks.count(b"{") <= self.max_depth:
            return  # too few brackets to nest deeper
        depth = _depth_of_marks(marks)
        if depth > self.max_depth:
            raise invalid_argument(
                f"Request nests JSON {depth} levels deep; the gateway allows "
                f"{self.max_depth} (max_json_depth)"
            )

    def check_elements(self, count: int, what: str = "tensor elements") -> None:
        """400 if a request holds more than `max_elements` values."""
        if count > self.max_elements:
            raise invalid_argument(
                f"Request has {count} {what}; the gateway allows {self.max_elements} "
                "(max_tensor_elements)"
            )

    def check_bytes(self, size: int, what: str = "a string") -> None:
        """400 if one string (`what`) is longer than `max_string_bytes`."""
        if size > self.max_string_bytes:
            raise invalid_argument(
                f"Request has {what} of {size} bytes; the gateway allows "
                f"{self.max_string_bytes} (max_string_bytes)"
            )

    def check_text(self, text: str, what: str = "a string") -> None:
        """`check_bytes` on the UTF-8 length of a parsed string (encoded only if it matters)."""
        if len(text) * 4 > self.max_string_bytes:
            self.check_bytes(len(text.encode("utf-8", "surrogateescape")), what)


DEFAULT_LIMITS = JsonLimits()


class ElementCount:
    """A request's running tensor element count; 400 once it passes `max_elements`.

    `values` are the JSON values to be charged, in order: when the limit is passed, the
    message counts the ones not charged yet by their first element at each level.
    """

    def __init__(self, limits: JsonLimits, values: Sequence[object] = ()) -> None:
        self.limits = limits
        self.values = values
        self.total = 0
        self.charged = 0

    def add(self, count: int) -> None:
        """Charge the next value's `count` elements."""
        self.total += count
        self.charged += 1
        if self.total > self.limits.max_elements:
            rest = sum(map(declared_size, self.values[self.charged :]))
            self.limits.check_elements(self.total + rest)


def declared_size(value: object) -> int:
    """The element count of a nested list, read off the first element at each level."""
    size = 1
    while isinstance(value, list):
        size *= len(value)
        if not value:
            break
        value = value[0]
    return size


def nesting_depth(body: bytes) -> int:
    """How deep the body's first JSON value nests: '[' and '{' counted outside strings.

    Exact for valid JSON; for invalid JSON a count of the brackets outside quotes. Bytes
    after a NUL or after the first value are ignored, as rapidjson ignores them.
    """
    return _depth_of_marks(_marks(body))


def _marks(body: bytes) -> bytes:
    """The body's brackets and string quotes, in order (escaped characters dropped)."""
    if b"\0" in body:
        body = body.split(b"\0", 1)[0]
    start = _LEADING.match(body)
    first = start.end() if start else 0
    if body[first : first + 1] not in (b"[", b"{"):
        return b""  # a scalar (or nothing): no nesting
    if b"\\" in body:
        body = _ESCAPED.sub(b"", body)  # drop escapes, so every remaining '"' is a delimiter
    return body.translate(None, _NOT_MARKS)


def _depth_of_marks(data: bytes) -> int:
    if not data:
        return 0
    marks = np.frombuffer(data, dtype=np.uint8)
    quote = marks == _QUOTE
    outside = (np.cumsum(quote) & 1 == 0) & ~quote
    steps = np.where(outside, np.where((marks | _CASE_BIT) == _OPEN, 1, -1), 0)
    levels = np.cumsum(steps)
    closed = np.flatnonzero(levels == 0)
    if closed.size:
        levels = levels[: closed[0]]
    return int(levels.max())
