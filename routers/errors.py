"""Rendering failures as TF Serving does: `{"error": "<message>"}` with its HTTP status."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import Response
from starlette.types import Send

from clients.types import Code, ServingError
from gateway.codec import encode_error

logger = logging.getLogger(__name__)

# TF Serving's ToHTTPStatusCode (model_servers/http_server.cc).
HTTP_STATUS_OF_CODE: dict[Code, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}

JSON = "application/json"
_JSON_BYTES = JSON.encode()

# Statuses that tell the caller to come back: each carries `Retry-After` (seconds).
RETRYABLE_STATUSES = frozenset({429, 503})
RETRY_AFTER_SECONDS = "1"


def json_error(status_code: int, message: str) -> Response:
    """A JSON error response with `message` as the only field (429/503 add Retry-After)."""
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status_code in RETRYABLE_STATUSES else None
    return Response(
        encode_error(message), status_code=status_code, media_type=JSON, headers=headers
    )


async def send_json(
    send: Send, status_code: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Send a JSON `body` as raw ASGI messages (no starlette `Response` on hot paths)."""
    raw_headers = [(b"content-type", _JSON_BYTES), (b"content-length", b"%d" % len(body))]
    raw_headers += headers
    await send({"type": "http.response.start", "status": status_code, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def send_json_error(
    send: Send, status_code: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Send `json_error(status_code, message)` as raw ASGI messages (for middleware)."""
    if status_code in RETRYABLE_STATUSES:
        headers = (*headers, (b"retry-after", RETRY_AFTER_SECONDS.encode()))
    await send_json(send, status_code, encode_error(message), headers)


def serving_error_response(error: ServingError) -> Response:
    """The HTTP response for a ServingError."""
    return json_error(HTTP_STATUS_OF_CODE.get(error.code, 500), error.message)


async def handle_serving_error(request: Request, error: Exception) -> Response:
    """FastAPI exception handler for ServingError raised anywhere below a route."""
    assert isinstance(error, ServingError)
    return serving_error_response(error)


async def handle_unexpected_error(request: Request, error: Exception) -> Response:
    """Last resort: log the traceback, tell the caller nothing internal."""
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return json_error(500, "Internal error; the gateway logged the details")
