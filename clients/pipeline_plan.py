"""What a pipeline is, and the checks that make it one: references first, then signatures.

A `PipelineDefinition` is an ordered list of `PipelineStep`s, each naming a served model
(scikit-learn or TensorFlow), optionally a version or label, a signature, the input that
takes the previous step's output and the output that feeds the next step. Two checks,
each failing with a `PipelineConfigError` that names the pipeline and the step:

* `check_references`, from the configuration alone: every step names a configured model,
  and no step names a pipeline (pipelines do not nest, so no cycle can form);
* `plan`, from the steps' metadata: each step's signature exists, the linking input and
  output names exist (or are the only ones), and each output's dtype and shape fit the
  next step's input. It gives the `Plan` a call follows.

Dtypes fit when they are equal or when the value converts without losing its kind: any
number to a float (float64 -> float32 included, as a JSON request would be read), an
integer or bool to an integer, bool to bool. Strings fit only strings.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from clients.dtypes import NUMPY_OF
from clients.types import (
    DEFAULT_SIGNATURE,
    DType,
    ModelMetadata,
    ModelSpec,
    Signature,
    TensorSpec,
)


class PipelineConfigError(ValueError):
    """A pipeline that cannot run as configured; the message names the pipeline and step."""


@dataclass(frozen=True)
class PipelineStep:
    """One step: a model (at a version or label, else latest), a signature, the links."""

    model: str
    version: int | None = None
    label: str | None = None
    signature: str = ""
    input: str | None = None  # the input that takes the previous step's output
    output: str | None = None  # the output that feeds the next step (last step: the answer)

    def spec(self) -> ModelSpec:
        """The model spec this step calls (resolved by the step's backend at call time)."""
        return ModelSpec(self.model, self.version, self.label, self.signature)


@dataclass(frozen=True)
class PipelineDefinition:
    """A named, ordered list of steps."""

    name: str
    steps: tuple[PipelineStep, ...]

    def where(self, index: int) -> str:
        """How errors name step `index`: "pipeline p, step 2 (classifier)"."""
        return f"pipeline {self.name}, step {index + 1} ({self.steps[index].model})"


@dataclass(frozen=True)
class Link:
    """How one step's answer becomes the next step's input: output alias -> input alias,
    converted to the input's dtype."""

    output: str
    input: str
    dtype: np.dtype[np.generic] | None  # None: no conversion (strings, or equal dtypes)


@dataclass(frozen=True)
class Plan:
    """A checked pipeline: the link after every step but the last, and the answer's outputs."""

    links: tuple[Link, ...]
    answer: tuple[str, ...]  # the last step's outputs the pipeline returns
    signature: Signature  # first step's inputs, the answer's outputs


def check_references(
    definition: PipelineDefinition, models: Collection[str], pipelines: Collection[str]
) -> None:
    """Every step names a configured model that is not a pipeline."""
    if not definition.steps:
        raise PipelineConfigError(f"pipeline {definition.name} has no steps")
    for index, step in enumerate(definition.steps):
        if step.model in pipelines:
            kind = "itself" if step.model == definition.name else f"pipeline {step.model}"
            raise PipelineConfigError(
                f"{definition.where(index)}: names {kind}; a step must be a tensorflow or "
                "sklearn model (pipelines do not nest, so they cannot form a cycle)"
            )
        if step.model not in models:
            raise PipelineConfigError(
                f"{definition.where(index)}: no model named {step.model} is configured"
            )
        if step.version is not None and step.label is not None:
            raise PipelineConfigError(
                f"{definition.where(index)}: give a version or a label, not both"
            )
        if index == 0 and step.input is not None:
            raise PipelineConfigError(
                f"{definition.where(index)}: 'input' names the input that takes the previous "
                "step's output; the first step takes the request's inputs"
            )


def plan(definition: PipelineDefinition, metadata: Sequence[ModelMetadata]) -> Plan:
    """Check the chain of signatures in `metadata` (one per step, in order)."""
    signatures = [_signature(definition, i, m) for i, m in enumerate(metadata)]
    links = []
    for index in range(len(signatures) - 1):
        output_alias = _output(definition, index, signatures[index])
        input_alias = _input(definition, index + 1, signatures[index + 1])
        produced = signatures[index].outputs[output_alias]
        wanted = signatures[index + 1].inputs[input_alias]
        _check_fit(definition, index, output_alias, produced, input_alias, wanted)
        convert = None if produced.dtype == wanted.dtype else NUMPY_OF.get(wanted.dtype)
        links.append(Link(output_alias, input_alias, convert))
    last = len(signatures) - 1
    outputs = signatures[last].outputs
    chosen = definition.steps[last].output is not None
    answer = (_output(definition, last, signatures[last]),) if chosen else tuple(outputs)
    signature = Signature(
        inputs=signatures[0].inputs,
        outputs={alias: outputs[alias] for alias in answer},
        method_name=signatures[last].method_name,
    )
    return Plan(tuple(links), answer, signature)


def _signature(definition: PipelineDefinition, index: int, metadata: ModelMetadata) -> Signature:
    name = definition.steps[index].signature or DEFAULT_SIGNATURE
    signature = metadata.signatures.get(name)
    if signature is None:
        raise PipelineConfigError(
            f"{definition.where(index)}: version {metadata.version} has no signature {name!r} "
            f"(it has {', '.join(sorted(metadata.signatures)) or 'none'})"
        )
    return signature


def _output(definition: PipelineDefinition, index: int, signature: Signature) -> str:
    return _one_of(definition, index, "output", definition.steps[index].output, signature.outputs)


def _input(definition: PipelineDefinition, index: int, signature: Signature) -> str:
    return _one_of(definition, index, "input", definition.steps[index].input, signature.inputs)


def _one_of(
    definition: PipelineDefinition,
    index: int,
    kind: str,
    named: str | None,
    tensors: Collection[str],
) -> str:
    signature = definition.steps[index].signature or DEFAULT_SIGNATURE
    listing = ", ".join(sorted(tensors)) or "none"
    if named is not None:
        if named not in tensors:
            raise PipelineConfigError(
                f"{definition.where(index)}: signature {signature!r} has no {kind} "
                f"{named!r} (its {kind}s: {listing})"
            )
        return named
    if len(tensors) != 1:
        raise PipelineConfigError(
            f"{definition.where(index)}: signature {signature!r} has {kind}s {listing}; "
            f"name the one to link with '{kind}'"
        )
    return next(iter(tensors))


def _check_fit(
    definition: PipelineDefinition,
    index: int,
    output_alias: str,
    produced: TensorSpec,
    input_alias: str,
    wanted: TensorSpec,
) -> None:
    following = definition.where(index + 1)
    if not dtype_fits(produced.dtype, wanted.dtype):
        raise PipelineConfigError(
            f"{definition.where(index)}: output {output_alias!r} is {produced.dtype.name}, "
            f"but {following} takes {input_alias!r} as {wanted.dtype.name}"
        )
    if produced.shape is None or wanted.shape is None:
        return
    if not shapes_fit(produced.shape, wanted.shape):
        raise PipelineConfigError(
            f"{definition.where(index)}: output {output_alias!r} has shape "
            f"{_dims(produced.shape)}, but {following} takes {input_alias!r} with shape "
            f"{_dims(wanted.shape)} (-1: any size)"
        )


def shapes_fit(produced: tuple[int, ...], wanted: tuple[int, ...]) -> bool:
    """Same rank, and every size known on both sides equal (-1 on either side: any)."""
    return len(produced) == len(wanted) and all(
        -1 in (have, want) or have == want for have, want in zip(produced, wanted, strict=True)
    )


_FLOATS = {DType.DT_HALF, DType.DT_FLOAT, DType.DT_DOUBLE, DType.DT_BFLOAT16}
_INTEGERS = {
    DType.DT_INT8,
    DType.DT_INT16,
    DType.DT_INT32,
    DType.DT_INT64,
    DType.DT_UINT8,
    DType.DT_UINT16,
    DType.DT_UINT32,
    DType.DT_UINT64,
}


def dtype_fits(produced: DType, wanted: DType) -> bool:
    """Whether a tensor of dtype `produced` may feed an input of dtype `wanted`."""
    if produced == wanted:
        return True
    if wanted in _FLOATS:
        return produced in _FLOATS | _INTEGERS | {DType.DT_BOOL}
    if wanted in _INTEGERS:
        return produced in _INTEGERS | {DType.DT_BOOL}
    return False


def _dims(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(map(str, shape)) + "]"
