"""Protocol-neutral model operations: look a model up, check signatures, call its backend.

Every protocol's router (TF Serving's REST API, the Open Inference Protocol) calls the
sequences here and only transcodes: it hands `run_predict` a decoder for its request
format, as TF Serving hands its JSON converter a signature lookup, and encodes the
`Prediction` it gets back. This module knows nothing of HTTP, JSON, gRPC or TensorFlow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from clients.base import ModelBackend, ReplicatedBackend, Tensors
from clients.context import CALL_CONTEXT
from clients.replica_view import TargetView
from clients.types import (
    DEFAULT_SIGNATURE,
    Classification,
    Code,
    ExampleBatch,
    ModelMetadata,
    ModelSpec,
    ServingError,
    Signature,
    VersionStatus,
    invalid_argument,
    shape_fits,
)
from gateway.registry import ModelEntry, ModelRegistry

_T = TypeVar("_T")


@dataclass(frozen=True)
class ResolvedSignature:
    """A request's model resolved to a version, and the signature it asked for."""

    spec: ModelSpec
    metadata: ModelMetadata
    signature: Signature


class PhaseClock(Protocol):
    """Where a request's time goes, and what answered it (the edge's request record)."""

    def parsed(self) -> None:
        """The time since the last lap went into decoding the request."""

    def called(self) -> None:
        """The time since the last lap went into the backend."""

    def succeeded(self, version: str, signature: str) -> None:
        """The request was answered by this version and signature."""


@dataclass(frozen=True)
class DecodedInputs:
    """A decoded predict request: the signature it named, resolved, and its tensors."""

    resolved: ResolvedSignature
    tensors: Tensors


@dataclass(frozen=True)
class Prediction:
    """A predict's answer: what resolved the request, and every output by alias."""

    resolved: ResolvedSignature
    outputs: dict[str, np.ndarray]


class SignatureLookup:
    """The signatures of the version one request addresses, fetched once, when its
    decoder asks (a decoder first reports its own parse errors, as TF Serving does)."""

    def __init__(self, dataplane: DataPlane, spec: ModelSpec, clock: PhaseClock) -> None:
        self._dataplane = dataplane
        self._spec = spec
        self._clock = clock
        self._metadata: ModelMetadata | None = None

    async def metadata(self) -> ModelMetadata:
        """The addressed version's metadata (NOT_FOUND and label errors as TF Serving's)."""
        if self._metadata is None:
            self._clock.parsed()
            self._metadata = await self._dataplane.metadata(self._spec)
            self._clock.called()
        return self._metadata

    async def signature(self, name: str) -> ResolvedSignature:
        """Signature `name` ("" = the default) of the addressed version."""
        metadata = await self.metadata()
        return self._dataplane.signature_in(self._spec, metadata, name)


Decoder = Callable[[SignatureLookup], Awaitable[DecodedInputs]]
"""Decodes one request, asking the lookup for the signature the request names."""


def shape_mismatch(name: str, resolved: ResolvedSignature, inputs: Tensors) -> str | None:
    """A sentence naming the inputs whose shape the signature's declared shape rules out,
    or None when every input fits (-1 is any size; an unknown rank fits anything).

    TF Serving feeds inputs without checking their shapes, so a misfit surfaces as
    TensorFlow's own error, in terms of graph internals (`{{node ...}}`); the gateway knows
    the signature and puts this first. The dtype cannot misfit: the JSON decoder builds
    every tensor with its signature's dtype and rejects what does not convert."""
    misfits = []
    for alias, tensor in inputs.items():
        spec = resolved.signature.inputs.get(alias)
        declared = None if spec is None else spec.shape
        actual = tuple(int(size) for size in np.shape(tensor))
        if declared is not None and not shape_fits(actual, declared):
            misfits.append(f"{alias!r} is {_dims(actual)}, declared {_dims(declared)}")
    if not misfits:
        return None
    return (
        f"Input shapes do not fit signature {name!r} of {resolved.spec.name}: "
        f"{'; '.join(misfits)} (-1: any size). TF Serving's error:"
    )


def _dims(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


class DataPlane:
    """The operations behind every endpoint, over the registry's backends.

    Every model call is bounded: at most `max_concurrent_per_model` requests of one model
    are in its backend at once (beyond that RESOURCE_EXHAUSTED, HTTP 429, at once: a slow
    backend cannot pile up work in the gateway), and no call starts once the request's
    deadline (`clients.context.CALL_CONTEXT`) has passed (DEADLINE_EXCEEDED, HTTP 504).
    A call already running is cut at the deadline by the TF client's gRPC deadline and,
    for HTTP requests, by the edge's deadline sweep (`routers.deadlines`).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        max_concurrent_per_model: int = 256,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.registry = registry
        self._max_concurrent = max_concurrent_per_model
        self._timeout = timeout_seconds
        self._in_flight: dict[str, int] = {}

    async def resolve_signature(self, spec: ModelSpec) -> ResolvedSignature:
        """Resolve the version (latest, number or label) and find `spec.signature_name`.

        Raises NOT_FOUND for an unknown model or version, INVALID_ARGUMENT for an
        unknown label or signature (TF Serving's messages).
        """
        entry = self._entry(spec)
        metadata = await self._call(entry, lambda backend: backend.metadata(spec))
        return self.signature_in(spec, metadata, spec.signature_name)

    def signature_in(
        self, spec: ModelSpec, metadata: ModelMetadata, name: str
    ) -> ResolvedSignature:
        """Signature `name` ("" = the default) of `metadata`, the version `spec` resolved
        to; INVALID_ARGUMENT (TF Serving's message) when it has no such signature."""
        signature = metadata.signatures.get(name or DEFAULT_SIGNATURE)
        if signature is None:
            message = (
                f'Serving signature name: "{name or DEFAULT_SIGNATURE}" not found in signature def'
            )
            if self._entry(spec).kind.lists_signatures:
                available = ", ".join(sorted(metadata.signatures))
                message += f". Available signatures: {available}"
            raise invalid_argument(message)
        resolved = ModelSpec(spec.name, metadata.version, spec.label, name)
        return ResolvedSignature(resolved, metadata, signature)

    async def run_predict(self, spec: ModelSpec, decode: Decoder, clock: PhaseClock) -> Prediction:
        """A whole predict: decode the request (the decoder looks up the signature it
        names), run it, and label `clock` with what answered. Every protocol's predict."""
        decoded = await decode(SignatureLookup(self, spec, clock))
        clock.parsed()
        outputs = await self.predict(decoded.resolved, decoded.tensors, spec)
        clock.called()
        resolved = decoded.resolved.spec
        clock.succeeded(str(resolved.version), resolved.signature_name or DEFAULT_SIGNATURE)
        return Prediction(decoded.resolved, outputs)

    async def predict(
        self, resolved: ResolvedSignature, inputs: Tensors, requested: ModelSpec | None = None
    ) -> dict[str, np.ndarray]:
        """Run the resolved signature on `inputs`; every output by alias.

        `requested` is the spec as the caller addressed it. The backend is asked for that
        (latest, a label or a number) under the resolved signature's name, so it resolves
        latest and labels when it runs the call: a version swap between the resolution and
        the call loses no request, and each TF Serving replica answers "latest" with its
        own newest version during a rolling update (as behind a Service in front of TF
        Serving). Without `requested`, the resolved version is asked for.
        """
        spec = resolved.spec
        if requested is not None:
            spec = ModelSpec(spec.name, requested.version, requested.label, spec.signature_name)
        entry = self._entry(spec)
        try:
            return await self._call(entry, lambda backend: backend.predict(spec, inputs))
        except ServingError as error:
            hint = None
            if error.code == Code.INVALID_ARGUMENT and entry.kind.explains_shapes:
                hint = shape_mismatch(spec.signature_name or DEFAULT_SIGNATURE, resolved, inputs)
            if hint is None:
                raise
            raise ServingError(error.code, f"{hint} {error.message}") from error

    async def run_classify(
        self, spec: ModelSpec, batch: ExampleBatch, clock: PhaseClock
    ) -> list[Classification]:
        """A whole classify of decoded examples, labelling `clock` with what answered."""
        results = await self.classify(spec, batch)
        clock.called()
        clock.succeeded(spec.addressed(), spec.signature_name or DEFAULT_SIGNATURE)
        return results

    async def run_regress(
        self, spec: ModelSpec, batch: ExampleBatch, clock: PhaseClock
    ) -> list[float]:
        """A whole regress of decoded examples, labelling `clock` with what answered."""
        results = await self.regress(spec, batch)
        clock.called()
        clock.succeeded(spec.addressed(), spec.signature_name or DEFAULT_SIGNATURE)
        return results

    async def classify(self, spec: ModelSpec, batch: ExampleBatch) -> list[Classification]:
        """Classify the examples with `spec`'s model."""
        return await self._call(self._entry(spec), lambda backend: backend.classify(spec, batch))

    async def regress(self, spec: ModelSpec, batch: ExampleBatch) -> list[float]:
        """Regress the examples with `spec`'s model."""
        return await self._call(self._entry(spec), lambda backend: backend.regress(spec, batch))

    async def metadata(self, spec: ModelSpec) -> ModelMetadata:
        """The resolved version's signatures (and backend extras)."""
        return await self._call(self._entry(spec), lambda backend: backend.metadata(spec))

    async def status(self, name: str, version: int | None) -> list[VersionStatus]:
        """Version states of a model, newest first; a label plays no part (as in TF Serving)."""
        entry = self.registry.find(name)
        if entry is None:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
        return await entry.backend.status(name, version)

    def unready_models(self) -> dict[str, str]:
        """Models with no AVAILABLE version, each with the reason; empty when all are ready.

        Reads what each backend keeps current (TF Serving replicas are polled in the
        background): no backend is called, so a probe answers at once in every state."""
        problems: dict[str, str] = {}
        for entry in self.registry.entries:
            reason = entry.backend.why_unready(entry.name)
            if reason is not None:
                problems[entry.name] = reason
        return problems

    def replica_views(self) -> list[TargetView]:
        """The replicas of every replicated backend (TF Serving targets), as last polled."""
        return [
            backend.replicas()
            for backend in self.registry.backends
            if isinstance(backend, ReplicatedBackend)
        ]

    async def _call(self, entry: ModelEntry, call: Callable[[ModelBackend], Awaitable[_T]]) -> _T:
        """Run `call` on the entry's backend if the deadline allows and the model has room."""
        CALL_CONTEXT.get().remaining_seconds(self._timeout)  # raises once the deadline passed
        name = entry.name
        in_flight = self._in_flight.get(name, 0)
        if in_flight >= self._max_concurrent:
            raise ServingError(
                Code.RESOURCE_EXHAUSTED,
                f"Model {name} is at its limit of {self._max_concurrent} requests in flight "
                "(max_concurrent_per_model); retry later",
            )
        self._in_flight[name] = in_flight + 1
        try:
            return await call(entry.backend)
        finally:
            self._in_flight[name] -= 1

    def in_flight(self, name: str) -> int:
        """Requests of model `name` inside its backend right now."""
        return self._in_flight.get(name, 0)

    def _entry(self, spec: ModelSpec) -> ModelEntry:
        entry = self.registry.find(spec.name)
        if entry is None:
            if spec.label is not None:
                # TF Serving resolves a label before it looks the model up: a model it does
                # not know has no labels (ServerCore::GetServableRequestFromModelSpec).
                raise invalid_argument(f"Unrecognized servable version label: {spec.label}")
            raise ServingError(Code.NOT_FOUND, f"Servable not found for request: {spec.describe()}")
        return entry
