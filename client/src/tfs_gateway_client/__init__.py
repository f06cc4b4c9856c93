"""A small client of TensorFlow Serving's REST API, without TensorFlow: httpx and numpy.

    from tfs_gateway_client import Client

    with Client("http://localhost:8000") as tfs:
        tfs.predict("half_plus_two", [1.0, 2.0, 5.0])  # array([2.5, 3. , 4.5])

`AsyncClient` has the same calls, awaited. Errors are `GatewayError` subclasses carrying
the HTTP status, the server's message and the request id.
"""

from ._errors import (
    Cancelled,
    Conflict,
    ConnectionFailed,
    DeadlineExceeded,
    GatewayError,
    Internal,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RequestTimeout,
    ResourceExhausted,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
    Unimplemented,
)
from ._json import Prediction
from ._retry import NO_RETRIES, RetryPolicy
from ._types import (
    Classification,
    ModelMetadata,
    ModelVersionStatus,
    SignatureDef,
    TensorInfo,
)
from ._version import __version__
from .aio import AsyncClient
from .sync import Client

__all__ = [
    "NO_RETRIES",
    "AsyncClient",
    "Cancelled",
    "Classification",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "DeadlineExceeded",
    "GatewayError",
    "Internal",
    "InvalidArgument",
    "ModelMetadata",
    "ModelVersionStatus",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "Prediction",
    "RequestTimeout",
    "ResourceExhausted",
    "RetryPolicy",
    "SignatureDef",
    "TensorInfo",
    "Unauthorized",
    "Unavailable",
    "UnexpectedResponse",
    "Unimplemented",
    "__version__",
]
