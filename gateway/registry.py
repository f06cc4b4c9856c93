"""Which backend serves which model: built from the settings, started and closed as one.

`PLATFORMS` maps each `ModelConfig.platform` to how its backends are built and what the
core may say about its models' errors. Adding an in-process library is one loader module
(`clients.inprocess.loader.ModelLoader`) and one row here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from clients.base import ModelBackend
from clients.embedded import EmbeddedTfServing
from gateway.settings import ModelConfig, Platform, Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Built:
    """What one platform's factory made: backends with the models each serves."""

    backends: list[tuple[ModelBackend, list[str]]] = field(default_factory=list)
    embedded: EmbeddedTfServing | None = None


BackendFactory = Callable[[Settings, Sequence[ModelConfig], Mapping[str, ModelBackend]], Built]
"""(settings, the platform's models, the backends of the models built so far) -> Built."""


@dataclass(frozen=True)
class PlatformKind:
    """How a platform's backends are built, and what the core may add to its errors."""

    build: BackendFactory
    lists_signatures: bool = False
    """An unknown signature's error lists the model's signatures."""
    explains_shapes: bool = False
    """A bad-argument error is prefixed with the inputs whose shapes misfit the signature."""
    label: str = ""
    """How model metadata names the platform (the Open Inference Protocol's `platform`)."""
    outputs_named_by_method: bool = False
    """Each signature's one output is named after the method that makes it ("predict")."""


@dataclass(frozen=True)
class ModelEntry:
    """A configured model and the backend that serves it."""

    name: str
    platform: Platform
    backend: ModelBackend

    @property
    def kind(self) -> PlatformKind:
        """The platform's row in `PLATFORMS`."""
        return PLATFORMS[self.platform]


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
        """Every backend, each once, in start order (pipelines after their steps)."""
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
        """Close every backend (pipelines first), then stop the embedded TF server."""
        for backend in reversed(self._backends):
            await backend.close()
        if self.embedded is not None:
            self.embedded.stop()


def embedded_tf_models(settings: Settings) -> list[ModelConfig]:
    """TensorFlow models with no TF Serving configured: the embedded backend serves them."""
    if settings.tf_serving_target is not None:
        return []
    return [m for m in settings.models if m.platform == "tensorflow" and m.target is None]


def _tensorflow(
    settings: Settings, models: Sequence[ModelConfig], _built: Mapping[str, ModelBackend]
) -> Built:
    """One gRPC client per target; models with no target go to the global
    `tf_serving_target`, else to the embedded backend. TF Serving's protos load all of
    TensorFlow, so they are imported only when a model needs them."""
    embedded_models = embedded_tf_models(settings)
    embedded = None
    by_target: dict[str, list[ModelConfig]] = {}
    for model in models:
        if model not in embedded_models:
            target = model.target or settings.tf_serving_target
            assert target is not None
            by_target.setdefault(target, []).append(model)
    if embedded_models:
        embedded = EmbeddedTfServing(
            [model.source() for model in embedded_models],
            port=settings.embedded_port,
            poll_seconds=settings.embedded_poll_seconds,
            start_timeout_seconds=settings.embedded_start_timeout_seconds,
        )
        by_target.setdefault(embedded.target, []).extend(embedded_models)
    if not by_target:
        return Built()
    from clients.tf_channel import BalancingOptions
    from clients.tf_serving import TfServingBackend

    balancing = BalancingOptions(ejection_seconds=settings.tf_ejection_seconds)
    built = Built(embedded=embedded)
    for target, served in by_target.items():
        backend = TfServingBackend(
            target,
            [model.name for model in served],
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
        built.backends.append((backend, [model.name for model in served]))
    return built


def _sklearn(
    settings: Settings, models: Sequence[ModelConfig], _built: Mapping[str, ModelBackend]
) -> Built:
    """One in-process scikit-learn backend for every sklearn model."""
    from clients.inprocess.batching import BatchingOptions
    from clients.sklearn_backend import SklearnBackend

    backend = SklearnBackend(
        [model.source() for model in models],
        max_workers=settings.sklearn_workers,
        poll_seconds=settings.sklearn_poll_seconds,
        batching=BatchingOptions(
            enabled=settings.batching_enabled,
            max_size=settings.batch_max_size,
            max_wait_ms=settings.batch_max_wait_ms,
            inline_below_ms=settings.batch_inline_below_ms,
        ),
    )
    return Built([(backend, [model.name for model in models])])


def _pipeline(
    settings: Settings, models: Sequence[ModelConfig], built: Mapping[str, ModelBackend]
) -> Built:
    """One pipeline backend over the backends of every step; raises `PipelineConfigError`
    for a step naming an unknown model or a pipeline."""
    from clients.pipeline import PipelineBackend
    from clients.pipeline_plan import check_references

    definitions = [model.pipeline() for model in models]
    pipelines = {definition.name for definition in definitions}
    for definition in definitions:
        check_references(definition, built, pipelines)
    steps = {s.model: built[s.model] for d in definitions for s in d.steps}
    backend = PipelineBackend(definitions, steps, timeout_seconds=settings.request_timeout_seconds)
    return Built([(backend, sorted(pipelines))])


PLATFORMS: dict[Platform, PlatformKind] = {
    "tensorflow": PlatformKind(_tensorflow, explains_shapes=True, label="tensorflow_savedmodel"),
    "sklearn": PlatformKind(
        _sklearn, lists_signatures=True, label="sklearn", outputs_named_by_method=True
    ),
    # after what its steps name
    "pipeline": PlatformKind(_pipeline, lists_signatures=True, label="pipeline"),
}
"""Every platform, in build order: a factory sees the backends of the rows above it."""


def build_registry(settings: Settings) -> ModelRegistry:
    """Create (not start) the backends the settings ask for, platform by platform."""
    entries: list[ModelEntry] = []
    backends: list[ModelBackend] = []
    embedded: EmbeddedTfServing | None = None
    by_model: dict[str, ModelBackend] = {}
    for platform, kind in PLATFORMS.items():
        models = [model for model in settings.models if model.platform == platform]
        if not models:
            continue
        built = kind.build(settings, models, by_model)
        embedded = embedded or built.embedded
        for backend, names in built.backends:
            backends.append(backend)
            entries += [ModelEntry(name, platform, backend) for name in names]
            by_model.update(dict.fromkeys(names, backend))
    order = {model.name: index for index, model in enumerate(settings.models)}
    entries.sort(key=lambda entry: order[entry.name])
    return ModelRegistry(entries, backends, embedded)
