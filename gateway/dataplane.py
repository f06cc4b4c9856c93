"""Protocol-neutral model operations: look a model up, check signatures, call its backend.

The REST router transcodes JSON to the numpy/neutral types used here and back; this
module knows nothing of HTTP, JSON, gRPC or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from clients.base import Tensors
from clients.types import (
    DEFAULT_SIGNATURE,
    Classification,
    Code,
    ExampleBatch,
    ModelMetadata,
    ModelSpec,
    ModelState,
    ServingError,
    Signature,
    VersionStatus,
    invalid_argument,
)
from gateway.registry import ModelEntry, ModelRegistry


@dataclass(frozen=True)
class ResolvedSignature:
    """A request's model resolved to a version, and the signature it asked for."""

    spec: ModelSpec
    metadata: ModelMetadata
    signature: Signature


class DataPlane:
    """The operations behind every endpoint, over the registry's backends."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    async def resolve_signature(self, spec: ModelSpec) -> ResolvedSignature:
        """Resolve the version (latest, number or label) and find `spec.signature_name`.

        Raises NOT_FOUND for an unknown model or version, INVALID_ARGUMENT for an
        unknown label or signature (TF Serving's messages).
        """
        entry = self._entry(spec)
        metadata = await entry.backend.metadata(spec)
        name = spec.signature_name or DEFAULT_SIGNATURE
        signature = metadata.signatures.get(name)
        if signature is None:
            message = f'Serving signature name: "{name}" not found in signature def'
            if entry.platform == "sklearn":
                available = ", ".join(sorted(metadata.signatures))
                message += f". Available signatures: {available}"
            raise invalid_argument(message)
        return ResolvedSignature(replace(spec, version=metadata.version), metadata, signature)

    async def predict(self, resolved: ResolvedSignature, inputs: Tensors) -> dict[str, np.ndarray]:
        """Run the resolved signature on `inputs`; every output by alias."""
        return await self._entry(resolved.spec).backend.predict(resolved.spec, inputs)

    async def classify(self, spec: ModelSpec, batch: ExampleBatch) -> list[Classification]:
        """Classify the examples with `spec`'s model."""
        return await self._entry(spec).backend.classify(spec, batch)

    async def regress(self, spec: ModelSpec, batch: ExampleBatch) -> list[float]:
        """Regress the examples with `spec`'s model."""
        return await self._entry(spec).backend.regress(spec, batch)

    async def metadata(self, spec: ModelSpec) -> ModelMetadata:
        """The resolved version's signatures (and backend extras)."""
        return await self._entry(spec).backend.metadata(spec)

    async def status(self, name: str, version: int | None) -> list[VersionStatus]:
        """Version states of a model, newest first; a label plays no part (as in TF Serving)."""
        entry = self.registry.find(name)
        if entry is None:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
        return await entry.backend.status(name, version)

    async def unready_models(self) -> dict[str, str]:
        """Models with no AVAILABLE version, each with the reason; empty when all are ready."""
        problems: dict[str, str] = {}
        for entry in self.registry.entries:
            try:
                statuses = await entry.backend.status(entry.name, None)
            except ServingError as error:
                problems[entry.name] = error.message
                continue
            if not any(status.state == ModelState.AVAILABLE for status in statuses):
                problems[entry.name] = _why_unavailable(statuses)
        return problems

    def _entry(self, spec: ModelSpec) -> ModelEntry:
        entry = self.registry.find(spec.name)
        if entry is None:
            raise ServingError(Code.NOT_FOUND, f"Servable not found for request: {spec.describe()}")
        return entry


def _why_unavailable(statuses: list[VersionStatus]) -> str:
    failures = [
        f"version {status.version}: {status.error_message}"
        for status in statuses
        if status.error_code != Code.OK
    ]
    if failures:
        return "no AVAILABLE version; " + "; ".join(failures)
    states = ", ".join(f"version {status.version} {status.state.name}" for status in statuses)
    return f"no AVAILABLE version ({states or 'no versions found'})"
