"""uvicorn's HTTP/1.1 protocol (httptools), guarded against hostile connections.

uvicorn closes a keep-alive connection that idles between requests, but nothing else:
a connection that never sends a byte, or sends its headers a byte at a time, stays open
for good, and a request head may be any size (the parser buffers a header until it
ends). `GuardedHttpProtocol` adds, per connection:

- a header-read timeout: from the connection's start (or a request's first byte) to the
  end of its headers, `header_timeout_seconds`; then a 408 (a connection that sent
  nothing is just closed);
- a bound on the request head (request line and headers): beyond `max_header_bytes` a
  431 (a URL alone beyond it: 414), counted exactly as headers are parsed, and with at
  most one socket read more than the limit buffered while a header is still arriving;
- a cap on open connections: beyond `max_connections` a new connection is answered 503
  with `Retry-After` at once and closed, so file descriptors are never exhausted and a
  client is refused quickly rather than left waiting in the accept queue;
- JSON bodies (`{"error": ...}`) for these answers and for requests the HTTP parser
  rejects, where uvicorn would answer in plain text.

Everything else (parsing, flow control, keep-alive) is uvicorn's own. Chosen over
switching servers: uvicorn with httptools is the fastest ASGI server measured for this
gateway (bench/RESULTS.md), and these guards cost a timer per request.
"""

from __future__ import annotations

import asyncio
import http
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

# File descriptors kept free for everything but client connections: model files, the
# backends' gRPC channels, logs, the embedded backend's pipes.
RESERVED_FDS = 128


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may do before the gateway closes it."""

    header_timeout_seconds: float = 10.0
    max_header_bytes: int = 32 * 1024
    max_connections: int = 2048


def usable_connections(wanted: int) -> int:
    """`wanted`, lowered to what the process's file-descriptor limit allows.

    Raises the soft limit to the hard one first (as most servers do), then keeps
    `RESERVED_FDS` for everything but client connections.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    allowed = max(soft - RESERVED_FDS, 16)
    if allowed < wanted:
        logger.warning(
            "max_connections lowered from %d to %d: the file descriptor limit is %d",
            wanted,
            allowed,
            soft,
        )
    return min(wanted, allowed)


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpProtocol]:
    """The protocol class uvicorn should use for a server with these `limits`."""
    return type("GuardedHttpProtocolWithLimits", (GuardedHttpProtocol,), {"limits": limits})


def error_response(status: int, message: str, *, retry_after: bool = False) -> bytes:
    """A complete HTTP/1.1 answer with a `{"error": message}` body; the connection closes."""
    body = orjson.dumps({"error": message})
    head = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after:
        head.append("retry-after: 1")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


class _RefusedError(Exception):
    """Raised in a parser callback to stop parsing a request a guard refused."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection, with the guards described in the module docstring.

    uvicorn creates one per connection from the class: `guarded_protocol(limits)` makes
    the class that carries a server's limits."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self.limits
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_head = True  # between a request's first byte (or the connection's start)
        self._head_bytes = 0  # and the end of its headers
        self._heads_completed = 0
        self._parsed_head_bytes = 0  # the current head's headers, as parsed
        self._refusal: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse the connection at once when over the cap, else start its header timer."""
        super().connection_made(transport)
        open_connections = len(self.connections)
        if open_connections > self._limits.max_connections:
            self._refuse(
                503,
                f"The gateway has too many open connections ({open_connections - 1}); retry later",
                retry_after=True,
            )
            return
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        """Feed uvicorn's parser, then enforce the head size."""
        if self._refusal is not None or self.transport.is_closing():
            return
        heads_before = self._heads_completed
        counts = self._in_head  # a read that starts in a request's body is not head
        super().data_received(data)
        # Count the read when it started in a head and no head ended inside it: a head that
        # ended here was within the limit, and what followed it is body (or the start of a
        # pipelined head, counted from the next read on).
        if counts and self._in_head and heads_before == self._heads_completed:
            if self.parser is None or self.transport.is_closing():
                return
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_header_bytes:
                self._refuse(431, self._too_large_head())

    def _too_large_head(self) -> str:
        return (
            f"Request headers too large: the limit is {self._limits.max_header_bytes} "
            "bytes for the request line and headers (max_header_bytes)"
        )

    def on_message_begin(self) -> None:
        """A request's first byte: its headers must now arrive in time."""
        super().on_message_begin()
        self._in_head = True
        self._parsed_head_bytes = 0
        self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        """Collect the URL, refusing one longer than the whole head may be (raising stops
        the parser at once; uvicorn then calls `send_400_response`, which sends this)."""
        super().on_url(url)
        if len(self.url) > self._limits.max_header_bytes:
            self._refusal = (
                414,
                f"Request URL too long: the limit is {self._limits.max_header_bytes} bytes "
                "(max_header_bytes)",
            )
            raise _RefusedError

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count a parsed header exactly, so a head that arrives in one read (which
        `data_received` does not count) is held to the same limit."""
        self._parsed_head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._parsed_head_bytes + len(self.url) > self._limits.max_header_bytes:
            self._refusal = (431, self._too_large_head())
            raise _RefusedError
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is complete: stop its timer and count the next request afresh."""
        self._in_head = False
        self._head_bytes = 0
        self._heads_completed += 1
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request is complete; a pipelined next one starts its own head."""
        super().on_message_complete()
        self._in_head = True

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the timer with the connection."""
        self._cancel_header_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """A request the HTTP parser rejects (or a guard stopped): a JSON answer, then close."""
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            self._refuse(400, f"Invalid HTTP request: {msg.rstrip('.')}")

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(
            self._limits.header_timeout_seconds, self._on_header_timeout
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self._head_bytes == 0:
            self.transport.close()  # nothing sent: an idle connection, not a request
            return
        self._refuse(
            408,
            "Request headers did not arrive within "
            f"{self._limits.header_timeout_seconds:g} s (header_timeout_seconds)",
        )

    def _refuse(self, status: int, message: str, *, retry_after: bool = False) -> None:
        self._cancel_header_timer()
        self._refusal = (status, message)
        if not self.transport.is_closing():
            self.transport.write(error_response(status, message, retry_after=retry_after))
            self.transport.close()
