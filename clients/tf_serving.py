"""ModelBackend for a TensorFlow Serving server, over gRPC with `grpc.aio`.

One long-lived channel per target; every call carries a deadline; gRPC failures are
translated into `ServingError` in exactly one place (`_rpc`). Model metadata (the
signatures used to type JSON inputs) is cached per request spec for a short TTL, so
the hot path costs one Predict RPC, not two.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np

from clients import tf_proto
from clients.base import Tensors
from clients.protos import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from clients.types import (
    Classification,
    Code,
    ExampleBatch,
    ModelMetadata,
    ModelSpec,
    ModelState,
    ServingError,
    VersionStatus,
)

_Response = TypeVar("_Response")
_MetadataKey = tuple[str, int | None, str | None]

# Messages gRPC itself produces (not the server) when the connection fails or the
# deadline passes: they name internal addresses, so callers get ours instead.
_TRANSPORT_MARKERS = ("failed to connect", "connection refused", "socket closed", "connect failed")


class TfServingBackend:
    """Serves models from one TF Serving (or TF-Serving-compatible) gRPC target."""

    def __init__(
        self,
        target: str,
        *,
        timeout_seconds: float = 10.0,
        max_message_bytes: int = 2**31 - 1,
        metadata_ttl_seconds: float = 1.0,
    ) -> None:
        self.target = target
        self._timeout = timeout_seconds
        self._max_message_bytes = max_message_bytes
        self._metadata_ttl = metadata_ttl_seconds
        self._metadata_cache: dict[_MetadataKey, tuple[float, ModelMetadata]] = {}
        self._channel: grpc.aio.Channel | None = None
        self._predictions: prediction_service_pb2_grpc.PredictionServiceStub | None = None
        self._models: model_service_pb2_grpc.ModelServiceStub | None = None

    async def start(self) -> None:
        """Open the channel. It connects lazily, so an unreachable server is not an error here."""
        options = [
            ("grpc.max_send_message_length", self._max_message_bytes),
            ("grpc.max_receive_message_length", self._max_message_bytes),
        ]
        self._channel = grpc.aio.insecure_channel(self.target, options=options)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    async def close(self) -> None:
        """Close the channel; calls still in flight are cancelled."""
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None

    async def metadata(self, spec: ModelSpec) -> ModelMetadata:
        """GetModelMetadata for `spec`, cached for `metadata_ttl_seconds`."""
        key: _MetadataKey = (spec.name, spec.version, spec.label)
        cached = self._metadata_cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=_model_spec(spec), metadata_field=["signature_def"]
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
        if self._models is None:
            raise _not_started()
        response = await self._rpc(self._models.GetModelStatus, request)
        statuses = [
            VersionStatus(
                version=item.version,
                state=ModelState(item.state),
                error_code=Code(item.status.error_code),
                error_message=item.status.error_message,
            )
            for item in response.model_version_status
        ]
        return sorted(statuses, key=lambda status: status.version, reverse=True)

    async def predict(self, spec: ModelSpec, inputs: Tensors) -> dict[str, np.ndarray]:
        """Predict with packed tensors; returns every output by alias."""
        request = predict_pb2.PredictRequest(model_spec=_model_spec(spec))
        for alias, proto in tf_proto.tensors_to_protos(inputs).items():
            request.inputs[alias].CopyFrom(proto)
        response = await self._rpc(self._prediction_stub().Predict, request)
        return {alias: tf_proto.make_ndarray(proto) for alias, proto in response.outputs.items()}

    async def classify(self, spec: ModelSpec, batch: ExampleBatch) -> list[Classification]:
        """Classify tf.Examples built from the request's examples."""
        request = classification_pb2.ClassificationRequest(
            model_spec=_model_spec(spec), input=tf_proto.make_input(batch)
        )
        response = await self._rpc(self._prediction_stub().Classify, request)
        return [
            Classification(classes=tuple((item.label, item.score) for item in result.classes))
            for result in response.result.classifications
        ]

    async def regress(self, spec: ModelSpec, batch: ExampleBatch) -> list[float]:
        """Regress tf.Examples built from the request's examples."""
        request = regression_pb2.RegressionRequest(
            model_spec=_model_spec(spec), input=tf_proto.make_input(batch)
        )
        response = await self._rpc(self._prediction_stub().Regress, request)
        return [item.value for item in response.result.regressions]

    def _prediction_stub(self) -> prediction_service_pb2_grpc.PredictionServiceStub:
        if self._predictions is None:
            raise _not_started()
        return self._predictions

    async def _rpc(self, method: Callable[..., Awaitable[_Response]], request: Any) -> _Response:
        """Call `method` with the deadline; the single place gRPC errors are translated."""
        try:
            return await method(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise self._translate(error) from None

    def _translate(self, error: grpc.aio.AioRpcError) -> ServingError:
        code = Code(error.code().value[0])
        details = error.details() or ""
        if code == Code.UNAVAILABLE and _is_transport_failure(details):
            return ServingError(code, "The TensorFlow Serving backend is unavailable; retry later")
        if code == Code.DEADLINE_EXCEEDED and details.lower().startswith("deadline exceeded"):
            return ServingError(
                code, f"The TensorFlow Serving backend did not answer within {self._timeout:g} s"
            )
        return ServingError(code, details)


def _is_transport_failure(details: str) -> bool:
    lowered = details.lower()
    return any(marker in lowered for marker in _TRANSPORT_MARKERS)


def _not_started() -> ServingError:
    return ServingError(Code.UNAVAILABLE, "The TensorFlow Serving client is not started")


def _model_spec(spec: ModelSpec) -> model_pb2.ModelSpec:
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
