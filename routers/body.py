"""Request bodies: decoding gzip / deflate without decompression bombs, and handing over.

`Inflater.feed` never produces more than `room + 1` bytes per call (zlib's `max_length`),
so a tiny body that would inflate to gigabytes is refused after `room` bytes, not after
it filled memory. The edge (`routers.edge`) reads and decodes every body once and leaves
it in the scope under `BODY_KEY`; `request_body` takes it from there.
"""

from __future__ import annotations

import zlib

from starlette.requests import Request
from starlette.types import Receive, Scope

BODY_KEY = "gateway.body"
"""Scope key of the request body the edge has read (decoded)."""

# Content-Encoding -> zlib `wbits`: gzip header (16 + 15) or zlib header (15, HTTP's deflate).
_WBITS = {b"gzip": 31, b"x-gzip": 31, b"deflate": 15}
_IDENTITY = (b"", b"identity")


class BodyError(Exception):
    """The body cannot be accepted: `status` 400, 413 or 415, with a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def inflater_for(content_encoding: bytes | None) -> Inflater | None:
    """The decoder for a Content-Encoding header, None for identity; 415 for the rest."""
    if content_encoding is None:
        return None
    coding = content_encoding.strip().lower()
    if coding in _IDENTITY:
        return None
    wbits = _WBITS.get(coding)
    if wbits is None:
        shown = content_encoding[:40].decode("latin-1")
        raise BodyError(
            415, f"Unsupported Content-Encoding {shown!r}: send gzip, deflate or identity"
        )
    return Inflater(wbits)


class Inflater:
    """Incremental gzip (several members allowed) or zlib decoder with a bounded output."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._name = "gzip" if wbits == 31 else "deflate"
        self._zlib = zlib.decompressobj(wbits)
        self._fed = False

    def feed(self, data: bytes, room: int) -> bytes:
        """Decode the next piece; 413 as soon as the output would pass `room` bytes."""
        out: list[bytes] = []
        produced = 0
        while data:
            self._fed = True
            try:
                piece = self._zlib.decompress(data, room - produced + 1)
            except zlib.error as error:
                raise self._corrupt(str(error)) from None
            produced += len(piece)
            if produced > room:
                raise BodyError(413, "Request body too large after decoding")
            out.append(piece)
            # Output below max_length means zlib consumed all input, or the stream ended.
            data = self._zlib.unused_data if self._zlib.eof else b""
            if data and self._wbits == 31:
                self._zlib = zlib.decompressobj(self._wbits)  # next gzip member
            elif data:
                raise self._corrupt("data after the end of the compressed stream")
        return b"".join(out)

    def finish(self) -> None:
        """The body is complete: 400 if the compressed stream is cut short."""
        if self._fed and not self._zlib.eof:
            raise self._corrupt("the compressed stream is truncated")

    def _corrupt(self, why: str) -> BodyError:
        return BodyError(400, f"Request body is not valid {self._name} data: {why}")


async def request_body(scope: Scope, receive: Receive) -> bytes:
    """The request body: as the edge left it in the scope, else read from `receive`."""
    body = scope.get(BODY_KEY)
    if isinstance(body, bytes):
        return body
    return await Request(scope, receive).body()
