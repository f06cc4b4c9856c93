"""What the non-predict calls return, read from TF Serving's JSON answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._errors import UnexpectedResponse


def _unexpected(what: str) -> UnexpectedResponse:
    return UnexpectedResponse(200, f"the answer is not {what}")


@dataclass(frozen=True)
class ModelVersionStatus:
    """One version in `GET /v1/models/NAME`: its state (START, LOADING, AVAILABLE,
    UNLOADING, END) and status (`error_code` "OK", or why it failed to load)."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


def parse_status(body: Any) -> list[ModelVersionStatus]:
    """`{"model_version_status": [...]}`, newest version first as the server lists them."""
    try:
        return [
            ModelVersionStatus(
                version=int(item["version"]),
                state=str(item["state"]),
                error_code=str(item.get("status", {}).get("error_code", "OK")),
                error_message=str(item.get("status", {}).get("error_message", "")),
            )
            for item in body["model_version_status"]
        ]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _unexpected("a model status") from None


@dataclass(frozen=True)
class TensorInfo:
    """A signature's input or output: TF dtype name (`DT_FLOAT`), shape (-1 for any size;
    None when the rank is unknown) and the graph tensor's name."""

    dtype: str
    shape: tuple[int, ...] | None
    name: str = ""


@dataclass(frozen=True)
class SignatureDef:
    """A signature: its method (`tensorflow/serving/predict`, `.../classify`, ...) and the
    inputs and outputs by alias."""

    method_name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]


@dataclass(frozen=True)
class ModelMetadata:
    """`GET .../metadata`: the model, the version that answered and its signatures; `raw`
    is the whole answer (scikit-learn models add a `sklearn` entry under `metadata`)."""

    name: str
    version: int
    signatures: dict[str, SignatureDef]
    raw: dict[str, Any] = field(repr=False, compare=False)


def _tensor_info(item: Any) -> TensorInfo:
    shape_json = item.get("tensor_shape", {})
    if shape_json.get("unknown_rank", False):
        shape = None
    else:
        shape = tuple(int(dim.get("size", -1)) for dim in shape_json.get("dim", []))
    return TensorInfo(str(item.get("dtype", "DT_INVALID")), shape, str(item.get("name", "")))


def parse_metadata(body: Any) -> ModelMetadata:
    """TF Serving's metadata answer (`signature_def` twice: the map key, then the map)."""
    try:
        spec = body["model_spec"]
        defs = body["metadata"]["signature_def"]["signature_def"]
        signatures = {
            str(name): SignatureDef(
                method_name=str(sig.get("method_name", "")),
                inputs={str(k): _tensor_info(v) for k, v in sig.get("inputs", {}).items()},
                outputs={str(k): _tensor_info(v) for k, v in sig.get("outputs", {}).items()},
            )
            for name, sig in defs.items()
        }
        return ModelMetadata(str(spec["name"]), int(spec["version"]), signatures, body)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _unexpected("model metadata") from None


@dataclass(frozen=True)
class Classification:
    """`:classify`: for example i and class j, `labels[i, j]` (str; "" when the model has
    no class output) and `scores[i, j]` (float64)."""

    labels: NDArray[np.object_]
    scores: NDArray[np.float64]


def parse_classification(body: Any) -> Classification:
    """`{"results": [[[label, score], ...] per example]}`."""
    try:
        results = body["results"]
        width = len(results[0]) if results else 0
        labels = np.empty((len(results), width), dtype=object)
        scores = np.empty((len(results), width), dtype=np.float64)
        for i, classes in enumerate(results):
            if len(classes) != width:
                raise ValueError("examples with different numbers of classes")
            for j, (label, score) in enumerate(classes):
                labels[i, j] = str(label)
                scores[i, j] = float(score)
        return Classification(labels, scores)
    except (KeyError, TypeError, ValueError, IndexError):
        raise _unexpected("a classification (results of [label, score] pairs)") from None


def parse_regression(body: Any) -> NDArray[np.float64]:
    """`{"results": [value per example]}` as a float64 array."""
    try:
        results = body["results"]
        if not isinstance(results, list):
            raise TypeError
        return np.asarray(results, dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise _unexpected("a regression (a list of numbers under 'results')") from None


def parse_model_list(body: Any) -> list[str]:
    """`{"models": [...]}` (KServe V1's list): each a name, or an object with a `name`."""
    try:
        models = body["models"]
        if not isinstance(models, list):
            raise TypeError
        return [m if isinstance(m, str) else str(m["name"]) for m in models]
    except (KeyError, TypeError):
        raise _unexpected("a model list ({'models': [...]})") from None
