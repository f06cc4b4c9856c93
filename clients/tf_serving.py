"""ModelBackend for a TensorFlow Serving target (one server or many replicas), over gRPC.

One long-lived balanced channel per target (`clients.tf_channel.BalancedChannel`): gRPC
spreads calls over every replica round robin, sets failing ones aside and retries
UNAVAILABLE on another replica (every method we call is idempotent) within the request's
deadline. When no replica can be reached a call fails at once. Every call carries the
request's remaining budget as its deadline and its request id as metadata, and the trace
context (W3C `traceparent`...) while a span is current (none with tracing off). gRPC failures
are translated into `ServingError` in exactly one place (`_rpc`). Model metadata (the
signatures used to type JSON inputs) is cached per request spec for a short TTL, so the
hot path costs one Predict RPC, not two. A `ReplicaMonitor` keeps every replica's model
status current in the background, for readiness and `GET /backends`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np
from opentelemetry import propagate, trace

from clients import tf_proto
from clients.base import Tensors
from clients.context import CALL_CONTEXT
from clients.protos import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from clients.replica_view import TargetView
from clients.tf_channel import (
    UNAVAILABLE_MESSAGE,
    BalancedChannel,
    BalancingOptions,
    channel_options,
    translate_error,
)
from clients.tf_replicas import ReplicaMonitor
from clients.types import (
    Classification,
    Code,
    ExampleBatch,
    ModelMetadata,
    ModelSpec,
    ServingError,
    VersionStatus,
)

_Response = TypeVar("_Response")
_MetadataKey = tuple[str, int | None, str | None]


class TfServingBackend:
    """Serves models from one TF Serving (or TF-Serving-compatible) gRPC target."""

    def __init__(
        self,
        target: str,
        models: Sequence[str] = (),
        *,
        timeout_seconds: float = 10.0,
        max_message_bytes: int = 2**31 - 1,
        metadata_ttl_seconds: float = 1.0,
        retry_max_attempts: int = 3,
        retry_initial_backoff_seconds: float = 0.05,
        retry_max_backoff_seconds: float = 1.0,
        balancing: BalancingOptions | None = None,
        status_poll_seconds: float = 1.0,
        dns_refresh_seconds: float = 30.0,
    ) -> None:
        self.target = target
        self._timeout = timeout_seconds
        options = channel_options(
            max_message_bytes,
            retry_max_attempts,
            retry_initial_backoff_seconds,
            retry_max_backoff_seconds,
            balancing,
        )
        self._channel = BalancedChannel(target, options)
        self.monitor = ReplicaMonitor(
            target,
            models,
            poll_seconds=status_poll_seconds,
            dns_refresh_seconds=dns_refresh_seconds,
            on_addresses_changed=self._replicas_changed,
        )
        self._metadata_ttl = metadata_ttl_seconds
        self._metadata_cache: dict[_MetadataKey, tuple[float, ModelMetadata]] = {}
        self._metadata_pending: dict[_MetadataKey, asyncio.Future[ModelMetadata]] = {}

    async def start(self) -> None:
        """Open the channel and start the replica monitor. The channel connects lazily, so
        an unreachable server is not an error here."""
        self._channel.open()
        self.monitor.start()

    async def close(self) -> None:
        """Stop the monitor and close the channel; calls still in flight are cancelled."""
        await self.monitor.close()
        await self._channel.close()

    def why_unready(self, name: str) -> str | None:
        """None when some replica serves an AVAILABLE version of `name`, else why not.

        Reads the monitor's last poll: no call is made."""
        return self.monitor.view.why_unready(name)

    def replicas(self) -> TargetView:
        """Every replica of the target and its models' versions, as last polled."""
        return self.monitor.view

    async def _replicas_changed(self, addresses: tuple[str, ...]) -> bool:
        """A resolved address set differs from the last: move calls to a fresh channel
        (False when it was not ready in time; the monitor then tries again)."""
        return await self._channel.renew(ready_within_seconds=5.0, drain_seconds=self._timeout)

    def forget_metadata(self, name: str) -> None:
        """Drop every cached resolution of model `name` (its versions changed)."""
        for key in [key for key in self._metadata_cache if key[0] == name]:
            del self._metadata_cache[key]

    async def metadata(self, spec: ModelSpec) -> ModelMetadata:
        """GetModelMetadata for `spec`, cached for `metadata_ttl_seconds`.

        Concurrent requests that miss the cache share one call (a burst after the TTL
        expires costs one call, not one per request); if that call fails, each makes
        its own, so one caller's short deadline is nobody else's error.
        """
        key: _MetadataKey = (spec.name, spec.version, spec.label)
        cached = self._metadata_cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._metadata_pending.get(key)
        if pending is not None:
            with contextlib.suppress(ServingError):
                return await asyncio.shield(pending)
            return await self._fetch_metadata(spec, key)
        task = asyncio.ensure_future(self._fetch_metadata(spec, key))
        self._metadata_pending[key] = task
        task.add_done_callback(lambda _: self._metadata_pending.pop(key, None))
        return await asyncio.shield(task)

    async def _fetch_metadata(self, spec: ModelSpec, key: _MetadataKey) -> ModelMetadata:
        now = time.monotonic()
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            # the signature name plays no part (the cache holds every signature)
            model_spec=_model_spec(ModelSpec(spec.name, spec.version, spec.label)),
            metadata_field=["signature_def"],
        )
        response = await self._rpc(self._prediction_stub().GetModelMetadata, request)
        metadata = _metadata_from_response(response, spec.name)
        if len(self._metadata_cache) > 4096:
            self._metadata_cache.clear()
        self._metadata_cache[key] = (now + self._metadata_ttl, metadata)
        return metadata

    async def status(self, name: str, version: int | None) -> list[VersionStatus]:
        """GetModelStatus, versions newest first."""
        request = get_model_status_pb2.GetModelStatusRequest(
            model_spec=_model_spec(ModelSpec(name=name, version=version))
        )
        if self._channel.models is None:
            raise _not_started()
        response = await self._rpc(self._channel.models.GetModelStatus, request)
        return tf_proto.version_statuses(response)

    async def predict(self, spec: ModelSpec, inputs: Tensors) -> dict[str, np.ndarray]:
        """Predict with packed tensors; returns every output by alias."""
        request = predict_pb2.PredictRequest(model_spec=_model_spec(spec))
        for alias, array in inputs.items():  # filled in place: no tensor built, then copied
            tf_proto.fill_tensor_proto(request.inputs[alias], array)
        response = await self._rpc(self._prediction_stub().Predict, request, spec.name)
        return {alias: tf_proto.make_ndarray(proto) for alias, proto in response.outputs.items()}

    async def classify(self, spec: ModelSpec, batch: ExampleBatch) -> list[Classification]:
        """Classify tf.Examples built from the request's examples."""
        request = classification_pb2.ClassificationRequest(
            model_spec=_model_spec(spec), input=tf_proto.make_input(batch)
        )
        response = await self._rpc(self._prediction_stub().Classify, request, spec.name)
        return [
            Classification(classes=tuple((item.label, item.score) for item in result.classes))
            for result in response.result.classifications
        ]

    async def regress(self, spec: ModelSpec, batch: ExampleBatch) -> list[float]:
        """Regress tf.Examples built from the request's examples."""
        request = regression_pb2.RegressionRequest(
            model_spec=_model_spec(spec), input=tf_proto.make_input(batch)
        )
        response = await self._rpc(self._prediction_stub().Regress, request, spec.name)
        return [item.value for item in response.result.regressions]

    def _prediction_stub(self) -> prediction_service_pb2_grpc.PredictionServiceStub:
        stub = self._channel.predictions
        if stub is None:
            raise _not_started()
        return stub

    async def _rpc(
        self,
        method: Callable[..., Awaitable[_Response]],
        request: Any,
        evict_on_not_found: str | None = None,
    ) -> _Response:
        """Call `method` within the request's deadline; the one place gRPC errors are translated.

        A NOT_FOUND from an inference call (`evict_on_not_found` names its model) means
        the version we resolved is gone: its cached metadata is dropped, so the next
        resolution asks the server again. When no replica can be reached (gRPC has failed
        to connect to every one, and the monitor's last poll reached none either) the call
        is not made: it could only fail, after the whole retry sequence. Until the first
        poll has ended, calls are made (and retried) as usual.
        """
        view = self.monitor.view
        if view.checked and not view.any_reachable and self._channel.unreachable():
            raise ServingError(Code.UNAVAILABLE, UNAVAILABLE_MESSAGE)
        context = CALL_CONTEXT.get()
        timeout = context.remaining_seconds(default=self._timeout)
        metadata = _call_metadata(context.request_id)
        try:
            return await method(request, timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            translated = translate_error(error, self.target, timeout)
        except grpc.aio.UsageError:
            translated = _not_started()
        if translated.code == Code.NOT_FOUND and evict_on_not_found is not None:
            self.forget_metadata(evict_on_not_found)
        raise translated


def _call_metadata(request_id: str | None) -> tuple[tuple[str, str], ...] | None:
    """A call's gRPC metadata: the request id, and the current trace context if any.

    With tracing off no span is current, so this costs one context lookup.
    """
    metadata: tuple[tuple[str, str], ...] = (("x-request-id", request_id),) if request_id else ()
    if trace.get_current_span().get_span_context().is_valid:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the configured propagators: traceparent, tracestate...
        metadata += tuple(carrier.items())
    return metadata or None


def _not_started() -> ServingError:
    return ServingError(Code.UNAVAILABLE, "The TensorFlow Serving client is not started")


def _model_spec(spec: ModelSpec) -> model_pb2.ModelSpec:
    if not tf_proto.is_utf8(spec.signature_name):
        # invalid UTF-8 from the request: no signature has that name (a protobuf string)
        raise ServingError(
            Code.INVALID_ARGUMENT, f"No signature was found with the name: {spec.signature_name}"
        )
    proto = model_pb2.ModelSpec(name=spec.name, signature_name=spec.signature_name)
    if spec.version is not None:
        proto.version.value = spec.version
    elif spec.label is not None:
        proto.version_label = spec.label
    return proto


def _metadata_from_response(
    response: get_model_metadata_pb2.GetModelMetadataResponse, name: str
) -> ModelMetadata:
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    if "signature_def" in response.metadata:
        response.metadata["signature_def"].Unpack(signature_map)
    return ModelMetadata(
        name=name,
        version=response.model_spec.version.value,
        signatures={
            key: tf_proto.signature_from_proto(signature)
            for key, signature in signature_map.signature_def.items()
        },
    )
