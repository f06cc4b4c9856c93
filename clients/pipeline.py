"""The pipeline backend: served models called in order, one step's output the next's input.

A pipeline is a `ModelBackend` over the backends of its steps (in-process scikit-learn,
TensorFlow over gRPC), so every surface serves it under its own name. Its one version (1)
has one signature, `serving_default`: the first step's inputs and the last step's outputs.

* **Checks.** `start()` checks every pipeline whose steps are all available
  (`pipeline_plan.plan`, from their metadata) and raises `PipelineConfigError` for one that
  cannot work: the gateway does not start. A pipeline with a step that is not available yet
  (a TF Serving not reachable at start) stays unready, saying which step it waits for, and
  a background task checks it once the step is; a problem found then is logged and the
  pipeline stays unready with it. The task checks again every `check_seconds`, so a new
  version of a step that breaks the chain shows up within that time.
* **Calls.** Each step asks its backend for the configured version or label (else latest),
  resolved when the step runs, so a version swap of a step loses no request: a request
  keeps the version it reached, and later steps of a request in flight may already run
  on the new version of their model. Concurrent scikit-learn steps batch as any requests.
* **Deadline, errors, timing.** One deadline covers the whole pipeline (the request's, else
  `timeout_seconds` from the first step); no step starts once it passed. An error keeps
  its code and names the pipeline and step. Each step's duration is added to the
  request's timings (`clients.context.add_timing`, shown in Server-Timing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from clients.base import ModelBackend, Tensors
from clients.context import CALL_CONTEXT, add_timing
from clients.pipeline_plan import PipelineConfigError, PipelineDefinition, Plan, plan
from clients.types import (
    DEFAULT_SIGNATURE,
    Classification,
    Code,
    ExampleBatch,
    ModelMetadata,
    ModelSpec,
    ModelState,
    ServingError,
    VersionStatus,
    invalid_argument,
)

PIPELINE_VERSION = 1
_log = logging.getLogger(__name__)


@dataclass
class _State:
    """What is known of one pipeline: its checked plan, or why it has none."""

    definition: PipelineDefinition
    plan: Plan | None = None
    metadata: ModelMetadata | None = None  # as of the check that made `plan`
    problem: str | None = None  # the last check found the chain broken
    waiting: str | None = None  # why no check could be made yet


class PipelineBackend:
    """A `ModelBackend` serving pipelines over the backends of their steps."""

    def __init__(
        self,
        pipelines: Sequence[PipelineDefinition],
        steps: Mapping[str, ModelBackend],
        *,
        timeout_seconds: float = 10.0,
        check_seconds: float = 1.0,
    ) -> None:
        """`steps`: the backend of every model a step names (checked by the caller)."""
        self._states = {p.name: _State(p, waiting="not checked yet") for p in pipelines}
        self._steps = dict(steps)
        self._timeout = timeout_seconds
        self._check_seconds = check_seconds
        self._checker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check every pipeline whose steps are available; raise for a broken one."""
        for state in self._states.values():
            await self._check(state, at_start=True)
        if self._checker is None and self._check_seconds > 0:
            self._checker = asyncio.create_task(self._check_forever(), name="pipeline-checks")

    async def close(self) -> None:
        """Stop checking (the steps' backends are closed by their owner)."""
        checker, self._checker = self._checker, None
        if checker is not None:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker

    def why_unready(self, name: str) -> str | None:
        """None when every step is available and the chain checked; else why not."""
        state = self._states.get(name)
        if state is None:
            return f"no pipeline named {name}"
        if state.problem is not None:
            return state.problem
        definition = state.definition
        for index, step in enumerate(definition.steps):
            reason = self._steps[step.model].why_unready(step.model)
            if reason is not None:
                return f"{definition.where(index)}: {reason}"
        return state.waiting if state.plan is None else None

    async def status(self, name: str, version: int | None) -> list[VersionStatus]:
        """Version 1: AVAILABLE when every step is (its configured version or label)."""
        state = self._state(name)
        if version is not None and version != PIPELINE_VERSION:
            raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {name}")
        if state.problem is not None:
            status = VersionStatus(
                PIPELINE_VERSION, ModelState.END, Code.FAILED_PRECONDITION, state.problem
            )
            return [status]
        reason = self.why_unready(name)
        if reason is None:
            try:
                await self._step_metadata(state.definition)
            except ServingError as error:
                reason = error.message
        if reason is None:
            return [VersionStatus(PIPELINE_VERSION, ModelState.AVAILABLE)]
        return [VersionStatus(PIPELINE_VERSION, ModelState.START, Code.UNAVAILABLE, reason)]

    async def metadata(self, spec: ModelSpec) -> ModelMetadata:
        """Version 1 and its signature, as of the last check (at most `check_seconds` old)."""
        state = self._state_for(spec)
        if state.metadata is None:
            await self._plan_now(state)
        assert state.metadata is not None
        return replace(state.metadata, name=spec.name)

    async def predict(self, spec: ModelSpec, inputs: Tensors) -> dict[str, np.ndarray]:
        """Run the steps in order under one deadline; the last step's outputs."""
        state = self._state_for(spec)
        checked = state.plan or await self._plan_now(state)
        context = CALL_CONTEXT.get()
        token = None
        if context.deadline is None:  # one deadline for every step, also outside HTTP
            deadline = time.monotonic() + self._timeout
            token = CALL_CONTEXT.set(replace(context, deadline=deadline))
        try:
            return await self._run(state.definition, checked, inputs)
        finally:
            if token is not None:
                CALL_CONTEXT.reset(token)

    async def classify(self, spec: ModelSpec, batch: ExampleBatch) -> list[Classification]:
        """Pipelines answer :predict only."""
        raise invalid_argument(f"Model {spec.name} is a pipeline: use :predict")

    async def regress(self, spec: ModelSpec, batch: ExampleBatch) -> list[float]:
        """Pipelines answer :predict only."""
        raise invalid_argument(f"Model {spec.name} is a pipeline: use :predict")

    async def _run(
        self, definition: PipelineDefinition, checked: Plan, inputs: Tensors
    ) -> dict[str, np.ndarray]:
        tensors: Tensors = inputs
        last = len(definition.steps) - 1
        for index, step in enumerate(definition.steps):
            where = definition.where(index)
            try:
                CALL_CONTEXT.get().remaining_seconds(self._timeout)
            except ServingError as error:
                raise ServingError(error.code, f"{where}: {error.message}") from None
            started = time.perf_counter()
            try:
                outputs = await self._steps[step.model].predict(step.spec(), tensors)
            except ServingError as error:
                raise ServingError(error.code, f"{where}: {error.message}") from error
            add_timing(f"step{index + 1}.{step.model}", time.perf_counter() - started)
            if index == last:
                return {alias: outputs[alias] for alias in checked.answer if alias in outputs}
            link = checked.links[index]
            value = outputs.get(link.output)
            if value is None:
                raise ServingError(
                    Code.FAILED_PRECONDITION,
                    f"{where}: the answer has no output {link.output!r} for the next step",
                )
            if link.dtype is not None:
                value = value.astype(link.dtype, copy=False)
            tensors = {link.input: value}
        raise AssertionError("a pipeline has at least one step")

    def _state(self, name: str) -> _State:
        state = self._states.get(name)
        if state is None:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
        return state

    def _state_for(self, spec: ModelSpec) -> _State:
        """The pipeline `spec` addresses: version 1 or latest, no labels, the default signature."""
        state = self._state(spec.name)
        if spec.label is not None:
            raise invalid_argument(f"Unrecognized servable version label: {spec.label}")
        if spec.version is not None and spec.version != PIPELINE_VERSION:
            raise ServingError(Code.NOT_FOUND, f"Servable not found for request: {spec.describe()}")
        if spec.signature_name not in ("", DEFAULT_SIGNATURE):
            raise invalid_argument(
                f'Serving signature name: "{spec.signature_name}" not found in signature def. '
                f"Available signatures: {DEFAULT_SIGNATURE}"
            )
        if state.problem is not None:
            raise ServingError(Code.FAILED_PRECONDITION, state.problem)
        return state

    async def _step_metadata(self, definition: PipelineDefinition) -> list[ModelMetadata]:
        """Every step's metadata, as its backend resolves it now; errors name the step."""

        async def one(index: int) -> ModelMetadata:
            step = definition.steps[index]
            try:
                return await self._steps[step.model].metadata(step.spec())
            except ServingError as error:
                raise ServingError(
                    error.code, f"{definition.where(index)}: {error.message}"
                ) from error

        return list(await asyncio.gather(*(one(i) for i in range(len(definition.steps)))))

    async def _plan_now(self, state: _State) -> Plan:
        """Check a pipeline at its first request when the background check has not yet."""
        await self._check(state, at_start=False)
        if state.plan is None:
            raise ServingError(Code.UNAVAILABLE, state.problem or state.waiting or "not checked")
        return state.plan

    async def _check(self, state: _State, *, at_start: bool) -> None:
        """Check `state`'s chain if every step is available (at start: raise if broken)."""
        definition = state.definition
        for index, step in enumerate(definition.steps):
            reason = self._steps[step.model].why_unready(step.model)
            if reason is not None:
                state.waiting = f"{definition.where(index)} is not available yet: {reason}"
                return
        try:
            metadata = await self._step_metadata(definition)
        except ServingError as error:
            state.waiting = f"not checked yet: {error.message}"
            return
        try:
            state.plan = plan(definition, metadata)
        except PipelineConfigError as error:
            if at_start:
                raise
            if state.problem != str(error):
                _log.error("%s", error)
            state.problem, state.plan, state.metadata = str(error), None, None
            return
        state.metadata = _pipeline_metadata(definition, state.plan, metadata)
        if state.problem is not None or state.waiting is not None:
            _log.info("pipeline %s checked: every step fits the next", definition.name)
        state.problem = state.waiting = None

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self._check_seconds)
            for state in self._states.values():
                try:
                    await self._check(state, at_start=False)
                except Exception:
                    _log.exception("checking pipeline %s failed", state.definition.name)


def _pipeline_metadata(
    definition: PipelineDefinition, checked: Plan, steps: Sequence[ModelMetadata]
) -> ModelMetadata:
    """The pipeline's version 1: its one signature, and each step's model, version and
    signature under `extra["pipeline"]`."""
    described = [
        {"model": m.name, "version": m.version, "signature": s.signature or DEFAULT_SIGNATURE}
        for s, m in zip(definition.steps, steps, strict=True)
    ]
    return ModelMetadata(
        definition.name,
        PIPELINE_VERSION,
        {DEFAULT_SIGNATURE: checked.signature},
        {"pipeline": {"steps": described}},
    )
