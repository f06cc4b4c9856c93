"""The gRPC servicers: PredictionService and ModelService, and the error mapping.

Each RPC resolves the servable like server_core.cc (name, version or label), holds the
version while it runs, and turns a `ServingError` into the gRPC status with TF
Serving's message (cut at 1024 bytes as grpc_status_util.cc does). Anything else is a
bug: it is logged and answered INTERNAL, and the server keeps running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tfserving_compat.errors import ServingError, internal, invalid_argument, truncate_message
from tfserving_compat.examples import run_classify, run_regress
from tfserving_compat.manager import ModelManager
from tfserving_compat.predict import model_metadata, run_predict, validate_metadata_request

_LOG = logging.getLogger(__name__)
T = TypeVar("T")


def _serve(context: grpc.ServicerContext, method: str, work: Callable[[], T]) -> T:
    """Runs one RPC body; errors become gRPC statuses."""
    try:
        return work()
    except ServingError as exc:
        error = exc
        _LOG.debug("%s failed: %s", method, exc)
    except Exception as exc:
        _LOG.exception("%s failed unexpectedly", method)
        error = internal(f"{method} failed: {type(exc).__name__}: {exc}"[:300])
    _abort(context, error)


def _abort(context: grpc.ServicerContext, error: ServingError) -> NoReturn:
    context.abort(error.code, truncate_message(error.message))
    raise AssertionError("unreachable")  # context.abort always raises


def _model_spec(request: Any) -> Any:
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    return request.model_spec


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    """tensorflow.serving.PredictionService over a ModelManager."""

    def __init__(self, manager: ModelManager, check_method_name: bool = False) -> None:
        self._manager = manager
        self._check = check_method_name

    def _version(self, spec: Any) -> int | None:
        choice = spec.WhichOneof("version_choice")
        version = int(spec.version.value) if choice == "version" else None
        label = str(spec.version_label) if choice == "version_label" else None
        return self._manager.resolve_version(spec.name, version, label)

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """Runs a signature on tensors."""

        def work() -> Any:
            spec = _model_spec(request)
            with self._manager.servable(spec.name, self._version(spec)) as (version, loaded):
                return run_predict(request, loaded, version, self._check)

        return _serve(context, "Predict", work)

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """Runs a classification signature on tf.Examples."""

        def work() -> Any:
            spec = _model_spec(request)
            with self._manager.servable(spec.name, self._version(spec)) as (version, loaded):
                return run_classify(request, loaded, version, self._check)

        return _serve(context, "Classify", work)

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """Runs a regression signature on tf.Examples."""

        def work() -> Any:
            spec = _model_spec(request)
            with self._manager.servable(spec.name, self._version(spec)) as (version, loaded):
                return run_regress(request, loaded, version, self._check)

        return _serve(context, "Regress", work)

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """Returns the SignatureDefMap of the resolved version."""

        def work() -> Any:
            spec = _model_spec(request)
            validate_metadata_request(request)
            with self._manager.servable(spec.name, self._version(spec)) as (version, loaded):
                return model_metadata(spec.name, version, loaded)

        return _serve(context, "GetModelMetadata", work)

    def MultiInference(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """Not implemented by this server."""
        _abort(
            context,
            ServingError(
                grpc.StatusCode.UNIMPLEMENTED,
                "MultiInference is not implemented by tfserving_compat",
            ),
        )


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    """tensorflow.serving.ModelService: status (config reload is not implemented)."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """Status of one version or of every tracked version (labels are ignored)."""

        def work() -> Any:
            spec = _model_spec(request)
            version = int(spec.version.value) if spec.HasField("version") else None
            response = get_model_status_pb2.GetModelStatusResponse()
            for row in self._manager.status(spec.name, version):
                entry = response.model_version_status.add()
                entry.version = row.version
                entry.state = row.state
                if row.error is not None:
                    entry.status.error_code = row.error.code.value[0]
                    entry.status.error_message = row.error.message
            return response

        return _serve(context, "GetModelStatus", work)

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """Not implemented by this server."""
        _abort(
            context,
            ServingError(
                grpc.StatusCode.UNIMPLEMENTED,
                "HandleReloadConfigRequest is not implemented by tfserving_compat",
            ),
        )
