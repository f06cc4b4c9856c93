"""Which backend serves which model: built from the settings, started and closed as one."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from clients.base import ModelBackend
from clients.embedded import EmbeddedTfServing
from gateway.settings import ModelConfig, Settings

logger = logging.getLogger(__name__)

Platform = Literal["tensorflow", "sklearn"]


@dataclass(frozen=True)
class ModelEntry:
    """A configured model and the backend that serves it."""

    name: str
    platform: Platform
    backend: ModelBackend


class ModelRegistry:
    """Model name -> backend. Owns the backends' lifecycle and the embedded TF server."""

    def __init__(
        self,
        entries: Sequence[ModelEntry],
        backends: Sequence[ModelBackend],
        embedded: EmbeddedTfServing | None = None,
    ) -> None:
        self._entries = {entry.name: entry for entry in entries}
        self._backends = list(backends)
        self.embedded = embedded

    def find(self, name: str) -> ModelEntry | None:
        """The entry for `name`, or None when no such model is configured."""
        return self._entries.get(name)

    @property
    def backends(self) -> list[ModelBackend]:
        """Every backend, each once."""
        return list(self._backends)

    @property
    def entries(self) -> list[ModelEntry]:
        """Every configured model, in configuration order."""
        return list(self._entries.values())

    async def start(self) -> None:
        """Start the embedded TF server (if any) and every backend."""
        if self.embedded is not None:
            self.embedded.start()
            self.embedded.supervise()
        for backend in self._backends:
            await backend.start()

    async def close(self) -> None:
        """Close every backend, then stop the embedded TF server."""
        for backend in self._backends:
            await backend.close()
        if self.embedded is not None:
            self.embedded.stop()


def build_registry(settings: Settings) -> ModelRegistry:
    """Create (not start) the backends the settings ask for.

    TensorFlow models are grouped by target, one gRPC client each; models with no
    target go to the global `tf_serving_target`, else to the embedded backend. The
    TensorFlow and scikit-learn clients are imported only when a model needs them:
    importing TF Serving's protos loads all of TensorFlow.
    """
    entries: list[ModelEntry] = []
    backends: list[ModelBackend] = []
    embedded: EmbeddedTfServing | None = None

    tf_models = [model for model in settings.models if model.platform == "tensorflow"]
    by_target: dict[str, list[ModelConfig]] = {}
    embedded_models = []
    for model in tf_models:
        target = model.target or settings.tf_serving_target
        if target is None:
            embedded_models.append(model)
        else:
            by_target.setdefault(target, []).append(model)
    if embedded_models:
        embedded = EmbeddedTfServing(
            [model.source() for model in embedded_models],
            port=settings.embedded_port,
            poll_seconds=settings.embedded_poll_seconds,
            start_timeout_seconds=settings.embedded_start_timeout_seconds,
        )
        by_target.setdefault(embedded.target, []).extend(embedded_models)
    if by_target:
        from clients.tf_channel import BalancingOptions
        from clients.tf_serving import TfServingBackend

        balancing = BalancingOptions(ejection_seconds=settings.tf_ejection_seconds)
        for target, models in by_target.items():
            backend = TfServingBackend(
                target,
                [model.name for model in models],
                timeout_seconds=settings.request_timeout_seconds,
                max_message_bytes=settings.grpc_max_message_bytes,
                metadata_ttl_seconds=settings.metadata_ttl_seconds,
                retry_max_attempts=settings.tf_retry_max_attempts,
                retry_initial_backoff_seconds=settings.tf_retry_initial_backoff_seconds,
                retry_max_backoff_seconds=settings.tf_retry_max_backoff_seconds,
                balancing=balancing,
                status_poll_seconds=settings.tf_status_poll_seconds,
                dns_refresh_seconds=settings.tf_dns_refresh_seconds,
            )
            backends.append(backend)
            entries += [ModelEntry(model.name, "tensorflow", backend) for model in models]

    sklearn_models = [model for model in settings.models if model.platform == "sklearn"]
    if sklearn_models:
        from clients.inprocess.batching import BatchingOptions
        from clients.sklearn_backend import SklearnBackend

        sklearn = SklearnBackend(
            [model.source() for model in sklearn_models],
            max_workers=settings.sklearn_workers,
            poll_seconds=settings.sklearn_poll_seconds,
            batching=BatchingOptions(
                enabled=settings.batching_enabled,
                max_size=settings.batch_max_size,
                max_wait_ms=settings.batch_max_wait_ms,
                inline_below_ms=settings.batch_inline_below_ms,
            ),
        )
        backends.append(sklearn)
        entries += [ModelEntry(model.name, "sklearn", sklearn) for model in sklearn_models]

    order = {model.name: index for index, model in enumerate(settings.models)}
    entries.sort(key=lambda entry: order[entry.name])
    return ModelRegistry(entries, backends, embedded)
