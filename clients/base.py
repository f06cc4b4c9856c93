"""The interface every model backend implements (TF Serving over gRPC, in-process scikit-learn).

The gateway core talks to backends only through `ModelBackend`, with numpy arrays
as the pivot type: DT_STRING tensors are numpy object arrays of `bytes`, every other
dtype is the numpy dtype TensorFlow uses for it (DT_FLOAT -> float32, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from clients.replica_view import TargetView
from clients.types import Classification, ExampleBatch, ModelMetadata, ModelSpec, VersionStatus

Tensors = Mapping[str, np.ndarray]


class ModelBackend(Protocol):
    """A source of models: resolves versions, describes signatures and runs requests.

    Every method raises `clients.types.ServingError` (never a foreign exception) with
    TF Serving's code and message: NOT_FOUND for an unknown model or version,
    INVALID_ARGUMENT for an unknown label or bad input, UNAVAILABLE when the backend
    cannot be reached.
    """

    async def start(self) -> None:
        """Open connections or load models; must not raise when a model fails to load."""

    async def close(self) -> None:
        """Release connections, threads and models."""

    async def metadata(self, spec: ModelSpec) -> ModelMetadata:
        """Resolve `spec` (latest, version or label) to a version and its signatures."""

    async def status(self, name: str, version: int | None) -> list[VersionStatus]:
        """Every tracked version of `name`, newest first, or just `version`."""

    def why_unready(self, name: str) -> str | None:
        """None when `name` has an AVAILABLE version, else why not.

        From state the backend keeps current by itself: never waits on I/O, so
        readiness probes answer at once."""

    async def predict(self, spec: ModelSpec, inputs: Tensors) -> dict[str, np.ndarray]:
        """Run the signature `spec.signature_name` ("" = serving_default) on `inputs`.

        `spec` addresses the version as the caller did (a number, a label or latest): the
        backend resolves it when it runs the call (the core resolved it through `metadata`
        first, to type the inputs). Returns every output of the signature, by alias.
        """

    async def classify(self, spec: ModelSpec, batch: ExampleBatch) -> list[Classification]:
        """Classify each example: one `Classification` per example, in order."""

    async def regress(self, spec: ModelSpec, batch: ExampleBatch) -> list[float]:
        """Regress each example: one value per example, in order."""


@runtime_checkable
class ReplicatedBackend(Protocol):
    """A backend that reaches its models on several replicas (TF Serving)."""

    def replicas(self) -> TargetView:
        """Every replica and its models' versions, as last seen (no I/O)."""
