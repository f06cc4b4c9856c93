"""JSON for model status and metadata, shaped as TF Serving's REST API returns them.

Both are proto3 JSON with snake_case names and default values included; int64 values
(versions, dimension sizes) are strings, as proto3 JSON prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from clients.types import ModelMetadata, Signature, TensorSpec, VersionStatus


def status_json(statuses: Sequence[VersionStatus]) -> bytes:
    """GetModelStatusResponse as JSON."""
    return orjson.dumps({"model_version_status": version_statuses(statuses)})


def version_statuses(statuses: Sequence[VersionStatus]) -> list[dict[str, Any]]:
    """Each ModelVersionStatus as a JSON object."""
    return [
        {
            "version": str(status.version),
            "state": status.state.name,
            "status": {
                "error_code": status.error_code.name,
                "error_message": status.error_message,
            },
        }
        for status in statuses
    ]


def metadata_json(metadata: ModelMetadata) -> bytes:
    """GetModelMetadataResponse as JSON; backend extras sit beside `signature_def`."""
    signature_defs = {
        name: _signature_json(signature) for name, signature in metadata.signatures.items()
    }
    return orjson.dumps(
        {
            "model_spec": {
                "name": metadata.name,
                "signature_name": "",
                "version": str(metadata.version),
            },
            "metadata": {
                "signature_def": {"signature_def": signature_defs},
                **metadata.extra,
            },
        }
    )


def _signature_json(signature: Signature) -> dict[str, Any]:
    return {
        "inputs": {alias: _tensor_json(spec) for alias, spec in signature.inputs.items()},
        "outputs": {alias: _tensor_json(spec) for alias, spec in signature.outputs.items()},
        "method_name": signature.method_name,
        "defaults": dict(signature.defaults),
    }


def _tensor_json(spec: TensorSpec) -> dict[str, Any]:
    if spec.shape is None:
        shape: dict[str, Any] = {"dim": [], "unknown_rank": True}
    else:
        shape = {
            "dim": [{"size": str(size), "name": ""} for size in spec.shape],
            "unknown_rank": False,
        }
    return {"dtype": spec.dtype.name, "tensor_shape": shape, "name": spec.name}
