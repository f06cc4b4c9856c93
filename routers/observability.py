"""The outermost middleware: request id, metrics, `Server-Timing`, the access log, traces.

Pure ASGI (no BaseHTTPMiddleware) and lean on the hot path: one header scan, one
ContextVar set, cached metric children, and no log record unless the access log is on
(or the answer is a 5xx, which is always logged with its request id). With tracing on
(`gateway.tracing`) each request also gets a server span, and its phases' spans made
from the same `RequestRecord`; with it off, not one span object.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from contextlib import suppress
from random import getrandbits
from time import perf_counter, time_ns

from opentelemetry.util.types import AttributeValue
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clients.context import CALL_CONTEXT, CallContext
from clients.types import ServingError
from gateway import tracing
from gateway.settings import Settings
from routers.errors import handle_unexpected_error
from routers.metrics import METRICS
from routers.request_record import RECORD_KEY, RequestRecord
from routers.tfserving_v1 import raw_path
from routers.v1_paths import V1Route, parse_v1_path

ACCESS_LOG = logging.getLogger("gateway.access")
REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_MAX_LOGGED_PATH = 1024
_CLIENT_GONE = 499  # no response was sent (the client went away first)
_MAY_SAY_503 = frozenset({"/readyz"})  # answers 503 by itself (not ready, or draining)
# The request methods HTTP semantic conventions name; any other is "_OTHER".
_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)


class ObservabilityMiddleware:
    """Give every request an id (`X-Request-ID`), and measure and log it."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.access_log = settings.access_log
        self.tracing = tracing.request_tracing()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request with its id in `CALL_CONTEXT` and a `RequestRecord` in scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        request_id = request_id_of(scope["headers"])
        id_header = (REQUEST_ID_HEADER, request_id.encode())
        outer = CALL_CONTEXT.get()  # keeps a deadline set around the app by an in-process caller
        token = CALL_CONTEXT.set(CallContext(request_id=request_id, deadline=outer.deadline))
        record = RequestRecord()
        scope[RECORD_KEY] = record
        count_bytes = self.access_log
        sent = 0
        spans = None if self.tracing is None else _start_spans(self.tracing, scope, request_id)
        responded_ns = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal sent, responded_ns
            if message["type"] == "http.response.start":
                if spans is not None:
                    responded_ns = time_ns()
                record.status = message["status"]
                headers = [*message.get("headers", ()), id_header]
                if record.verb:
                    headers.append((b"server-timing", record.server_timing()))
                message["headers"] = headers
            elif count_bytes:
                sent += len(message.get("body", b""))
            await send(message)

        METRICS.started()
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as error:
            if record.status:
                raise  # the response already started; nothing left to answer with
            response = await handle_unexpected_error(Request(scope), error)
            await response(scope, receive, send_with_headers)
        finally:
            seconds = perf_counter() - start
            code = record.status or _CLIENT_GONE
            METRICS.finished(record, code, seconds)
            if code == 429:
                METRICS.count_shed("per_model")
            elif code == 503 and not record.verb and scope["path"] not in _MAY_SAY_503:
                METRICS.count_shed("global")  # turned away before reaching a model
            if code >= 500 or (self.access_log and ACCESS_LOG.isEnabledFor(logging.INFO)):
                _log_access(scope, record, request_id, code, seconds, sent)
            CALL_CONTEXT.reset(token)
            if spans is not None:
                _finish_spans(spans, scope, record, responded_ns or time_ns())


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's `X-Request-ID` if it is 1-128 chars of [A-Za-z0-9._:-], else a new one.

    New ids are 128 random bits in hex, like a uuid4's, from `random` rather than
    `os.urandom` (a system call per request); they need to be unique, not secret.
    """
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SANE_REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return f"{getrandbits(128):032x}"


def _log_access(
    scope: Scope, record: RequestRecord, request_id: str, status: int, seconds: float, sent: int
) -> None:
    """One line per request; never the body, never a header (so no credentials)."""
    path = _logged_path(scope)
    duration_ms = round(seconds * 1e3, 3)
    ACCESS_LOG.log(
        logging.WARNING if status >= 500 else logging.INFO,
        "%s %s %d %.3fms",
        scope["method"],
        path,
        status,
        duration_ms,
        extra={
            "request_id": request_id,
            "method": scope["method"],
            "path": path,
            "model": record.model,
            "version": record.version,
            "signature": record.signature,
            "verb": record.verb,
            "status": status,
            "duration_ms": duration_ms,
            "parse_ms": round(record.parse * 1e3, 3),
            "backend_ms": round(record.backend * 1e3, 3),
            "render_ms": round(record.render * 1e3, 3),
            "bytes_in": _content_length(scope),
            "bytes_out": sent,
        },
    )


def _start_spans(traced: tracing.Tracing, scope: Scope, request_id: str) -> tracing.RequestSpans:
    """The request's server span, named and labelled as far as the request line tells."""
    method = scope["method"] if scope["method"] in _KNOWN_METHODS else "_OTHER"
    attributes: dict[str, AttributeValue] = {
        "http.request.method": method,
        "url.path": _logged_path(scope),
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
        "gateway.request_id": request_id,
    }
    if method == "_OTHER":
        attributes["http.request.method_original"] = scope["method"]
    name = "HTTP" if method == "_OTHER" else method
    return tracing.RequestSpans(traced, name, scope["headers"], attributes, time_ns())


def _finish_spans(
    spans: tracing.RequestSpans, scope: Scope, record: RequestRecord, phases_end_ns: int
) -> None:
    """End the request's spans: route, status and model as HTTP semantic conventions
    have them (a 5xx is an error; a 4xx is the client's, not the server span's), then the
    phases' spans from `record`."""
    attributes: dict[str, AttributeValue] = {}
    if record.status:
        attributes["http.response.status_code"] = record.status
    for key, value in (
        ("gateway.verb", record.verb),
        ("gateway.model.name", record.model),
        ("gateway.model.version", record.version),
        ("gateway.model.signature", record.signature),
    ):
        if value:
            attributes[key] = value
    method = scope["method"] if scope["method"] in _KNOWN_METHODS else "HTTP"
    route = _route_template(scope, record)
    if route is not None:
        attributes["http.route"] = route
    error_type = str(record.status) if record.status >= 500 else None
    spans.finish(
        method if route is None else f"{method} {route}",
        attributes,
        error_type,
        (record.parse, record.backend, record.render),
        phases_end_ns,
    )


def _route_template(scope: Scope, record: RequestRecord) -> str | None:
    """The matched route as a template (`/v1/models/{model_name}:predict`), if known."""
    if record.verb and record.verb != "malformed":
        with suppress(ServingError):  # it parsed once already: a cache hit
            return _v1_template(parse_v1_path(scope["method"], raw_path(scope)))
        return None
    route = scope.get("route")  # set by FastAPI's router for the other paths
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


def _v1_template(route: V1Route) -> str:
    if route.kind == "list":
        return "/v1/models"
    template = "/v1/models/{model_name}"
    if route.version is not None:
        template += "/versions/{version}"
    elif route.label is not None:
        template += "/labels/{label}"
    if route.kind == "metadata":
        return template + "/metadata"
    return template if route.kind == "status" else f"{template}:{route.kind}"


def _logged_path(scope: Scope) -> str:
    """The still-encoded path without the query (no control characters reach the log)."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    return raw.partition(b"?")[0][:_MAX_LOGGED_PATH].decode("latin-1")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
