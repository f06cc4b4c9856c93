"""The one error type of the server: a canonical status code and a message.

Every failure (TensorFlow's OpError, a bad request, a missing servable) becomes a
`ServingError` at the place it happens; `service.py` turns it into a gRPC status.
"""

from __future__ import annotations

import grpc

# tensorflow_serving/model_servers/grpc_status_util.cc: messages longer than this many
# bytes are cut and get the suffix "...TRUNCATED".
_ERROR_MESSAGE_LIMIT = 1024

_CODES_BY_VALUE: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A failure with a canonical (gRPC / absl) status code and a caller-facing message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def code_from_value(value: int) -> grpc.StatusCode:
    """Maps a numeric canonical code (e.g. TensorFlow's `OpError.error_code`) to grpc's enum."""
    return _CODES_BY_VALUE.get(value, grpc.StatusCode.UNKNOWN)


def invalid_argument(message: str) -> ServingError:
    """INVALID_ARGUMENT: the caller sent something wrong."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def failed_precondition(message: str) -> ServingError:
    """FAILED_PRECONDITION: the request cannot be served in the current state."""
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


def not_found(message: str) -> ServingError:
    """NOT_FOUND: no such model, version or file."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def internal(message: str) -> ServingError:
    """INTERNAL: a bug or an unexpected condition on the server side."""
    return ServingError(grpc.StatusCode.INTERNAL, message)


def truncate_message(message: str) -> str:
    """Cuts a status message to TF Serving's gRPC limit (1024 bytes + "...TRUNCATED")."""
    raw = message.encode("utf-8")
    if len(raw) <= _ERROR_MESSAGE_LIMIT:
        return message
    return raw[:_ERROR_MESSAGE_LIMIT].decode("utf-8", errors="ignore") + "...TRUNCATED"
