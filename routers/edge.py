"""The gateway's edge: load shedding, API keys, the request deadline and body limits.

One pure ASGI middleware (BaseHTTPMiddleware would cost every request a task and a
stream), between CORS and the app. For each HTTP request outside `OPEN_PATHS`, in order:

1. shed load: beyond `max_concurrent_requests` in flight, 503 with Retry-After at once;
2. API keys (when configured; OPTIONS, i.e. CORS preflight, needs none): else 401;
3. the deadline: `X-Request-Timeout` seconds (capped) or `request_timeout_seconds`,
   put in `CALL_CONTEXT` for the backends; reading the body and computing the answer
   must fit in it, else 408 (body still arriving) or 504 (no response started yet),
   enforced by cancelling the request's task (see routers/deadlines.py);
4. the body: 413 for a `Content-Length` over `max_body_bytes` before reading anything,
   else it is read counting bytes (413 as soon as it passes the limit), gzip/deflate
   decoded incrementally under the same limit (415 for other encodings, 400 if corrupt),
   and handed to the app decoded: in the scope under `routers.body.BODY_KEY`, and
   replayed through `receive`.
"""

from __future__ import annotations

import asyncio
import math
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clients.context import CALL_CONTEXT, CallContext
from gateway.settings import Settings
from routers.auth import (
    INVALID_MESSAGE,
    INVALID_TOKEN,
    MISSING_MESSAGE,
    WWW_AUTHENTICATE,
    ApiKeys,
    Verdict,
)
from routers.body import BODY_KEY, BodyError, Inflater, inflater_for
from routers.deadlines import DeadlineSweeper
from routers.errors import send_json_error
from routers.request_record import RECORD_KEY, RequestRecord

# Probes (the gateway's and the Open Inference Protocol's) and metrics: never shed, never
# behind an API key.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"})

_TIMEOUT_HEADER = b"x-request-timeout"
_WANTED = frozenset(
    {b"authorization", b"x-api-key", _TIMEOUT_HEADER, b"content-length", b"content-encoding"}
)


class _RejectError(Exception):
    """The request is answered with this error instead of reaching the app."""

    def __init__(
        self, status: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class _ClientGoneError(Exception):
    """The client went away while sending its body."""


class EdgeMiddleware:
    """Guards the app; see the module docstring for what it checks, in which order."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.in_flight = 0
        self._max_in_flight = settings.max_concurrent_requests
        self._max_body = settings.max_body_bytes
        self._default_timeout = settings.request_timeout_seconds
        self._max_timeout = settings.max_request_timeout_seconds
        keys = [key.get_secret_value() for key in settings.api_keys]
        self._keys = ApiKeys(keys) if keys else None
        self._deadlines = DeadlineSweeper()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self._max_in_flight:
            await send_json_error(
                send,
                503,
                f"The gateway is overloaded ({self.in_flight} requests in flight); retry later",
            )
            return
        self.in_flight += 1
        try:
            await self._guarded(scope, receive, send)
        except _RejectError as rejected:
            await send_json_error(send, rejected.status, rejected.message, rejected.headers)
        except _ClientGoneError:
            pass
        finally:
            self.in_flight -= 1

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {name: value for name, value in scope["headers"] if name in _WANTED}
        if self._keys is not None and scope["method"] != "OPTIONS":
            _authenticate(self._keys, headers)
        timeout = self._timeout(headers.get(_TIMEOUT_HEADER))
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise _RejectError(413, self._too_large())
        try:
            inflater = inflater_for(headers.get(b"content-encoding"))
        except BodyError as error:
            raise _RejectError(error.status, error.message) from None

        task = asyncio.current_task()
        assert task is not None
        record = scope.get(RECORD_KEY)
        if not isinstance(record, RequestRecord):  # no ObservabilityMiddleware around us
            record = scope[RECORD_KEY] = RequestRecord()
            send = _recording_status(send, record)
        request_id = CALL_CONTEXT.get().request_id
        token = CALL_CONTEXT.set(CallContext(request_id, time.monotonic() + timeout))
        self._deadlines.watch(task, asyncio.get_running_loop().time() + timeout, record)
        reading = True
        try:
            body = await self._read_body(receive, inflater)
            reading = False
            if inflater is not None:
                scope = _decoded_scope(scope, len(body))
            scope[BODY_KEY] = body
            await self.app(scope, _replay(body, receive), send)
        except asyncio.CancelledError:
            if record.status or not self._deadlines.expired(task):
                raise
            if reading:
                message = f"The request body did not arrive within the deadline ({timeout:.3g} s)"
                raise _RejectError(408, message) from None
            message = f"The request did not complete within its deadline ({timeout:.3g} s)"
            raise _RejectError(504, message) from None
        finally:
            self._deadlines.forget(task)
            CALL_CONTEXT.reset(token)

    def _timeout(self, header: bytes | None) -> float:
        """The request's time budget in seconds: its header (capped), else the default."""
        if header is None:
            return self._default_timeout
        try:
            seconds = float(header)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            shown = header[:40].decode("latin-1")
            raise _RejectError(
                400,
                f"Invalid X-Request-Timeout header {shown!r}: expected a positive number "
                "of seconds, e.g. 'X-Request-Timeout: 2.5'",
            )
        return min(seconds, self._max_timeout)

    async def _read_body(self, receive: Receive, inflater: Inflater | None) -> bytes:
        """The whole body (decoded), never holding more than `max_body_bytes` of it."""
        chunks: list[bytes] = []
        received = 0  # bytes on the wire
        size = 0  # bytes after decoding
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGoneError
            data: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            received += len(data)
            if received > self._max_body:
                raise _RejectError(413, self._too_large())
            if inflater is not None:
                try:
                    data = inflater.feed(data, room=self._max_body - size)
                    if not more:
                        inflater.finish()
                except BodyError as error:
                    message_text = self._too_large() if error.status == 413 else error.message
                    raise _RejectError(error.status, message_text) from None
            size += len(data)
            if not more and not chunks:
                return data  # the usual case: one message, no copy
            chunks.append(data)
        return b"".join(chunks)

    def _too_large(self) -> str:
        return f"Request body too large: the limit is {self._max_body} bytes (after decoding)"


def _authenticate(keys: ApiKeys, headers: dict[bytes, bytes]) -> None:
    verdict = keys.check(headers.get(b"authorization"), headers.get(b"x-api-key"))
    if verdict is Verdict.MISSING:
        raise _RejectError(401, MISSING_MESSAGE, (WWW_AUTHENTICATE,))
    if verdict is Verdict.INVALID:
        raise _RejectError(401, INVALID_MESSAGE, (INVALID_TOKEN,))


def _decoded_scope(scope: Scope, length: int) -> Scope:
    """`scope` as the app should see a decoded body: no Content-Encoding, its real length."""
    headers = [
        (name, value)
        for name, value in scope["headers"]
        if name not in (b"content-encoding", b"content-length")
    ]
    headers.append((b"content-length", str(length).encode()))
    return {**scope, "headers": headers}


def _recording_status(send: Send, record: RequestRecord) -> Send:
    """`send` that notes the response's status in `record` when the response starts."""

    async def send_recording_status(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.status = message["status"]
        await send(message)

    return send_recording_status


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body once, then waits for the disconnect."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
