"""The hint the gateway puts before a TF error that a shape misfit caused (gateway/dataplane.py)."""

from __future__ import annotations

import numpy as np

from clients.types import DType, ModelMetadata, ModelSpec, Signature, TensorSpec
from gateway.dataplane import ResolvedSignature, shape_mismatch

SIGNATURE = Signature(
    inputs={
        "pixels": TensorSpec("pixels:0", DType.DT_FLOAT, (-1, 64)),
        "any": TensorSpec("any:0", DType.DT_STRING, None),  # unknown rank
        "scalar": TensorSpec("s:0", DType.DT_INT64, ()),
    },
    outputs={},
    method_name="tensorflow/serving/predict",
)
RESOLVED = ResolvedSignature(
    ModelSpec("digits", 1),
    ModelMetadata("digits", 1, {"serving_default": SIGNATURE}),
    SIGNATURE,
)


def _hint(**inputs: np.ndarray) -> str | None:
    return shape_mismatch("serving_default", RESOLVED, inputs)


def test_fitting_shapes_get_no_hint() -> None:
    assert _hint(pixels=np.zeros((3, 64), np.float32)) is None
    assert _hint(pixels=np.zeros((0, 64), np.float32)) is None
    assert _hint(any=np.zeros((2, 3, 4), object), scalar=np.array(1, np.int64)) is None
    assert _hint(unknown_alias=np.zeros(3)) is None  # TF Serving's own message says it


def test_misfits_are_named_with_both_shapes() -> None:
    assert _hint(pixels=np.zeros((1, 3), np.float32), scalar=np.zeros(2, np.int64)) == (
        "Input shapes do not fit signature 'serving_default' of digits: "
        "'pixels' is [1,3], declared [-1,64]; 'scalar' is [2], declared [] (-1: any size). "
        "TF Serving's error:"
    )
    assert "'pixels' is [64], declared [-1,64]" in (_hint(pixels=np.zeros(64)) or "")
