"""Typed exceptions: one class per HTTP status TF Serving's REST API answers with.

An error answer is `{"error": "<message>"}` with the status TF Serving maps its canonical
code to (INVALID_ARGUMENT 400, NOT_FOUND 404, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503,
DEADLINE_EXCEEDED 504, ...). Every exception carries that status, the server's message and
the request id the answer was given under.
"""

from __future__ import annotations


class GatewayError(Exception):
    """A request that did not succeed.

    `status` is the HTTP status of the answer, or None when there was no answer (the
    connection failed, or the client's own deadline passed first). `message` is the
    server's `error` text (or what went wrong locally). `request_id` is the id the request
    was sent with and the server echoed in `X-Request-ID`. `retry_after` is the server's
    `Retry-After` in seconds, when it sent one.
    """

    def __init__(
        self,
        status: int | None,
        message: str,
        request_id: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        status = "no answer" if self.status is None else f"HTTP {self.status}"
        text = f"{status}: {self.message}"
        return f"{text} (request id {self.request_id})" if self.request_id else text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, message={self.message!r}, "
            f"request_id={self.request_id!r})"
        )


class InvalidArgument(GatewayError):
    """400: a malformed request, a wrong dtype or shape, an unknown signature or label."""


class Unauthorized(GatewayError):
    """401: no API key, or a wrong one."""


class PermissionDenied(GatewayError):
    """403: PERMISSION_DENIED."""


class NotFound(GatewayError):
    """404: no such model or version."""


class Conflict(GatewayError):
    """409: ALREADY_EXISTS or ABORTED."""


class PayloadTooLarge(GatewayError):
    """413: the request body is over the server's limit."""


class ResourceExhausted(GatewayError):
    """429: the model has too many requests in flight; retried by the client's policy."""


class Cancelled(GatewayError):
    """499: CANCELLED."""


class Internal(GatewayError):
    """500: INTERNAL, UNKNOWN or DATA_LOSS."""


class Unimplemented(GatewayError):
    """501: UNIMPLEMENTED (e.g. a dtype JSON cannot carry)."""


class Unavailable(GatewayError):
    """503: the server is overloaded or its backend is down; retried by the client's policy."""


class ConnectionFailed(Unavailable):
    """No answer: the connection could not be made or broke (`status` is None)."""


class DeadlineExceeded(GatewayError):
    """504: the request's deadline passed on the server; or (`status` None) on the client."""


class RequestTimeout(DeadlineExceeded):
    """408: the request body did not reach the server within the deadline."""


class UnexpectedResponse(GatewayError):
    """A 2xx answer this client cannot read (not JSON, or not the shape it expected)."""


ERROR_OF_STATUS: dict[int, type[GatewayError]] = {
    400: InvalidArgument,
    401: Unauthorized,
    403: PermissionDenied,
    404: NotFound,
    408: RequestTimeout,
    409: Conflict,
    413: PayloadTooLarge,
    429: ResourceExhausted,
    499: Cancelled,
    500: Internal,
    501: Unimplemented,
    503: Unavailable,
    504: DeadlineExceeded,
}


def error_for_status(
    status: int, message: str, request_id: str | None, retry_after: float | None = None
) -> GatewayError:
    """The exception for an error answer with HTTP `status` (GatewayError for the others)."""
    cls = ERROR_OF_STATUS.get(status, GatewayError)
    return cls(status, message, request_id, retry_after=retry_after)
