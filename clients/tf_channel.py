"""How the TF Serving client talks gRPC: balancing, retries, the channel, error translation.

Kept apart from `tf_serving.py` (the ModelBackend) so the transport choices, and why
they were made, live in one place. Balancing is gRPC's own: `round_robin` picks a ready
replica per call, `outlier_detection` sets aside replicas whose calls fail (a hung one's
calls end at their deadline and count as failures), and the retry policy repeats a call
that failed with UNAVAILABLE on the next replica.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import grpc

from clients.protos import model_service_pb2_grpc, prediction_service_pb2_grpc
from clients.types import Code, ServingError

UNAVAILABLE_MESSAGE = "The TensorFlow Serving backend is unavailable; retry later"
_TRANSIENT_FAILURE = grpc.ChannelConnectivity.TRANSIENT_FAILURE

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


@dataclass(frozen=True)
class BalancingOptions:
    """How calls spread over a target's replicas and how failing replicas are set aside."""

    ejection_seconds: float = 30.0  # gRPC's and Envoy's base ejection time
    ejection_interval_seconds: float = 1.0
    # A replica is ejected when at least this share of its calls failed in an interval...
    failure_percentage: int = 50
    # ...and it had at least this many calls; and never more than this share of replicas
    # at once, so a flood of bad requests (which fail on every replica) cannot empty the set.
    minimum_calls: int = 5
    max_ejection_percent: int = 33


def service_config(
    max_attempts: int,
    initial_backoff_seconds: float,
    max_backoff_seconds: float,
    balancing: BalancingOptions,
) -> str:
    """gRPC service config JSON: per-call round robin with outlier ejection, and retries.

    Retries: UNAVAILABLE on the idempotent methods, on the next replica round robin
    picks. Before retry n gRPC waits a random time in [0, min(initial * 2**(n-1), max)],
    never past the call's deadline; `max_attempts` 1 means none (gRPC caps it at 5).
    No retry throttling: gRPC keeps its token bucket per server name for the whole
    process and, measured here, it stopped retries while one replica of three failed
    every call, turning them into errors. A call with every replica down is refused
    before it is made instead (`BalancedChannel.unreachable`).
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
    outlier_detection = {
        "interval": f"{balancing.ejection_interval_seconds:.3f}s",
        "baseEjectionTime": f"{balancing.ejection_seconds:.3f}s",
        "maxEjectionTime": f"{max(balancing.ejection_seconds, 300.0):.3f}s",
        "maxEjectionPercent": balancing.max_ejection_percent,
        "failurePercentageEjection": {
            "threshold": balancing.failure_percentage,
            "enforcementPercentage": 100,
            "minimumHosts": 2,
            "requestVolume": balancing.minimum_calls,
        },
        "childPolicy": [{"round_robin": {}}],
    }
    return json.dumps(
        {
            "loadBalancingConfig": [{"outlier_detection_experimental": outlier_detection}],
            "methodConfig": [method_config],
        }
    )


def channel_options(
    max_message_bytes: int,
    retry_max_attempts: int,
    retry_initial_backoff_seconds: float,
    retry_max_backoff_seconds: float,
    balancing: BalancingOptions | None = None,
) -> list[tuple[str, str | int]]:
    """Every option of the balanced channel: message limits, balancing, retries, reconnect."""
    config = service_config(
        retry_max_attempts,
        retry_initial_backoff_seconds,
        retry_max_backoff_seconds,
        balancing or BalancingOptions(),
    )
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.service_config", config),
        *_TRANSPORT_OPTIONS,
    ]


def replica_channel_options() -> list[tuple[str, str | int]]:
    """Options of a channel to one replica (the monitor's): no retries, quick reconnects."""
    return [
        ("grpc.enable_retries", 0),
        ("grpc.service_config_disable_resolution", 1),
        *[option for option in _TRANSPORT_OPTIONS if option[0] != "grpc.enable_retries"],
        # Each replica's own channel: gRPC must not share its connection with the
        # balanced channel's subchannel to the same address.
        ("grpc.use_local_subchannel_pool", 1),
    ]


class BalancedChannel:
    """The channel calls go through, renewable without dropping calls in flight.

    gRPC resolves a DNS name again only when a connection breaks, so replicas added
    behind the name would never get calls. `renew` opens a second channel (which
    resolves afresh), waits until it is ready, moves new calls to it and closes the old
    one once its calls have had `drain_seconds` to finish.
    """

    def __init__(self, target: str, options: list[tuple[str, str | int]]) -> None:
        self.target = target
        self._options = options
        self._channel: grpc.aio.Channel | None = None
        self.predictions: prediction_service_pb2_grpc.PredictionServiceStub | None = None
        self.models: model_service_pb2_grpc.ModelServiceStub | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def open(self) -> None:
        """Create the channel and start connecting to every replica (so an unreachable
        target is known before the first call); nothing here fails on a dead server."""
        channel = grpc.aio.insecure_channel(self.target, options=self._options)
        channel.get_state(try_to_connect=True)
        self._use(channel)

    def _use(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(channel)

    def unreachable(self) -> bool:
        """Whether every replica failed to connect (gRPC's TRANSIENT_FAILURE): a call now
        can only fail, so the caller can answer at once instead of retrying. Asking also
        makes an idle channel connect again, so the answer cannot stick without calls."""
        channel = self._channel
        return channel is not None and channel.get_state(try_to_connect=True) is _TRANSIENT_FAILURE

    async def renew(self, ready_within_seconds: float, drain_seconds: float) -> bool:
        """Switch to a freshly resolved channel once it is ready; False if it was not ready
        within `ready_within_seconds` (the current channel stays)."""
        old = self._channel
        if old is None:
            return False
        fresh = grpc.aio.insecure_channel(self.target, options=self._options)
        try:
            await asyncio.wait_for(fresh.channel_ready(), ready_within_seconds)
        except TimeoutError:
            await fresh.close(grace=None)
            return False
        if self._channel is not old:  # closed meanwhile
            await fresh.close(grace=None)
            return False
        self._use(fresh)
        task = asyncio.get_running_loop().create_task(old.close(grace=drain_seconds))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return True

    async def close(self) -> None:
        """Close the channel (calls in flight are cancelled) and any being drained."""
        channel, self._channel = self._channel, None
        self.predictions = self.models = None
        if channel is not None:
            await channel.close(grace=None)
        for task in list(self._closing):
            task.cancel()


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
