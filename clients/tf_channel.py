"""How the TF Serving client talks gRPC: channel options, retry policy, error translation.

Kept apart from `tf_serving.py` (the ModelBackend) so the transport choices, and why
they were made, live in one place.
"""

from __future__ import annotations

import json
import re
from typing import Any

import grpc

from clients.types import Code, ServingError

UNAVAILABLE_MESSAGE = "The TensorFlow Serving backend is unavailable; retry later"

# Messages gRPC itself produces (not the server) when the connection fails or breaks:
# they name internal addresses, so callers get ours instead.
_TRANSPORT_MARKERS = (
    "failed to connect",
    "connection refused",
    "connection reset",
    "connect failed",
    "socket closed",
    "broken pipe",
    "goaway",
    "keepalive",
    "endpoint closing",
    "transport closed",
)
_ADDRESS = re.compile(r"\b(?:ipv4|ipv6|unix|unix-abstract|dns):|\d{1,3}(?:\.\d{1,3}){3}")

# Reconnect: the first retry 0.1 s after a connection fails, then at most every 1 s, so a
# restarted server is used about a second after it listens again. grpc's
# min_reconnect_backoff is really the least time a connection attempt gets (the connect
# timeout): 5 s, so a slow handshake on a busy host is not counted as a failure.
# Keepalive: with calls in flight and a silent connection, ping after 5 minutes (the least
# interval TF Serving accepts by default; pinging more often draws GOAWAY "too_many_pings")
# and drop the connection when the ping is not answered within 20 s. Shorter silences are
# bounded by each call's deadline; a killed server is noticed at once (the kernel resets
# its connections).
_TRANSPORT_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.min_reconnect_backoff_ms", 5000),
    ("grpc.keepalive_time_ms", 300_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.enable_retries", 1),
    # Our retry policy, never one published in DNS for the target's name.
    ("grpc.service_config_disable_resolution", 1),
]

# Every RPC the client makes only reads state, so repeating it is safe.
_IDEMPOTENT_METHODS = [
    {"service": "tensorflow.serving.PredictionService", "method": method}
    for method in ("Predict", "Classify", "Regress", "GetModelMetadata")
] + [{"service": "tensorflow.serving.ModelService", "method": "GetModelStatus"}]


def retry_service_config(
    max_attempts: int, initial_backoff_seconds: float, max_backoff_seconds: float
) -> str:
    """gRPC service config JSON: retry UNAVAILABLE on the idempotent methods.

    Before retry n gRPC waits a random time in [0, min(initial * 2**(n-1), max)], and
    never past the call's deadline. `max_attempts` 1 means no retries (gRPC caps it at 5).
    """
    method_config: dict[str, Any] = {"name": _IDEMPOTENT_METHODS}
    if max_attempts > 1:
        method_config["retryPolicy"] = {
            "maxAttempts": min(max_attempts, 5),
            "initialBackoff": f"{initial_backoff_seconds:.6f}s",
            "maxBackoff": f"{max(max_backoff_seconds, initial_backoff_seconds):.6f}s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps({"methodConfig": [method_config]})


def channel_options(
    max_message_bytes: int,
    retry_max_attempts: int,
    retry_initial_backoff_seconds: float,
    retry_max_backoff_seconds: float,
) -> list[tuple[str, str | int]]:
    """Every option of the client's channel: message limits, retries, reconnect, keepalive."""
    service_config = retry_service_config(
        retry_max_attempts, retry_initial_backoff_seconds, retry_max_backoff_seconds
    )
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.service_config", service_config),
        *_TRANSPORT_OPTIONS,
    ]


def translate_error(error: grpc.aio.AioRpcError, target: str, timeout: float) -> ServingError:
    """The caller's view of a failed call: TF Serving's own errors pass through; transport
    failures and passed deadlines get messages that name no address."""
    code = Code(error.code().value[0])
    details = error.details() or ""
    names_address = target in details or _ADDRESS.search(details) is not None
    if code == Code.DEADLINE_EXCEEDED and (
        details.lower().startswith("deadline exceeded") or names_address
    ):
        return ServingError(
            code,
            "The TensorFlow Serving backend did not answer within the request's deadline "
            f"({timeout:.3g} s)",
        )
    if code == Code.UNAVAILABLE and (names_address or _is_transport_failure(details)):
        return ServingError(code, UNAVAILABLE_MESSAGE)
    if names_address:
        return ServingError(code, f"The TensorFlow Serving backend failed ({code.name})")
    return ServingError(code, details)


def _is_transport_failure(details: str) -> bool:
    lowered = details.lower()
    return any(marker in lowered for marker in _TRANSPORT_MARKERS)
