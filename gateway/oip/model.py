"""A model as the Open Inference Protocol (v2) sees it, built from its signatures.

v2 has one input and one output list per model; the gateway's models have signatures.
`V2Model` keeps every signature (an infer request may pick one with the
`signature_name` parameter) and names outputs as v2 callers expect: a TensorFlow
output by its alias, a scikit-learn output by its method ("predict", "predict_proba"),
as MLServer names them. Metadata shows the default signature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clients.dtypes import v2_name_of
from clients.types import DEFAULT_SIGNATURE, ModelMetadata, Signature, TensorSpec
from gateway.registry import PlatformKind


@dataclass(frozen=True)
class V2Signature:
    """A signature's inputs (alias -> spec), and its outputs by v2 name -> alias."""

    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]
    output_names: Mapping[str, str]


@dataclass(frozen=True)
class V2Model:
    """One version of a model, every signature with v2 output names."""

    name: str
    version: int
    platform: str
    signatures: Mapping[str, V2Signature]


def v2_model(metadata: ModelMetadata, kind: PlatformKind) -> V2Model:
    """The v2 view of `metadata` for a model of platform `kind`."""
    signatures = {
        name: _v2_signature(signature, by_method=kind.outputs_named_by_method)
        for name, signature in metadata.signatures.items()
    }
    return V2Model(metadata.name, metadata.version, kind.label, signatures)


def _v2_signature(signature: Signature, *, by_method: bool) -> V2Signature:
    if by_method:  # one output, its tensor named "<method>:0"
        names = {spec.name.split(":")[0]: alias for alias, spec in signature.outputs.items()}
    else:
        names = {alias: alias for alias in signature.outputs}
    return V2Signature(signature.inputs, signature.outputs, names)


def metadata_document(model: V2Model, versions: Sequence[int]) -> dict[str, object]:
    """The v2 model metadata response for `model` (its default signature)."""
    signature = model.signatures.get(DEFAULT_SIGNATURE) or next(iter(model.signatures.values()))
    return {
        "name": model.name,
        "versions": [str(version) for version in versions],
        "platform": model.platform,
        "inputs": [
            _tensor_document(alias, spec) for alias, spec in sorted(signature.inputs.items())
        ],
        "outputs": [
            _tensor_document(name, signature.outputs[alias])
            for name, alias in sorted(signature.output_names.items())
        ],
    }


def _tensor_document(name: str, spec: TensorSpec) -> dict[str, object]:
    shape = [-1] if spec.shape is None else list(spec.shape)  # unknown rank: one -1
    return {"name": name, "datatype": v2_name_of(spec.dtype), "shape": shape}
