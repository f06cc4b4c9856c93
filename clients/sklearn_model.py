"""One loaded scikit-learn model version: its signatures, metadata and the blocking calls.

Every method here is synchronous and may be slow; the backend runs them in its thread pool.
Errors raised by the estimator itself propagate unchanged and are translated by the backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import is_classifier, is_regressor
from sklearn.utils import get_tags

from clients.base import Tensors
from clients.sklearn_artifacts import Artifact, running_versions
from clients.sklearn_features import FeatureLayout, examples_to_input
from clients.sklearn_signatures import (
    INPUT_ALIAS,
    OUTPUT_ALIAS,
    InputLayout,
    build_signatures,
    input_layout,
    signature_methods,
    to_output,
)
from clients.types import (
    DEFAULT_SIGNATURE,
    Classification,
    ExampleBatch,
    ModelMetadata,
    Signature,
    invalid_argument,
)

_EXAMPLE_SIGNATURES = ("", DEFAULT_SIGNATURE)
_VERB_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "classify": ("classifier", is_classifier),
    "regress": ("regressor", is_regressor),
}


@dataclass(frozen=True)
class LoadedModel:
    """An estimator with everything derived from it at load time."""

    name: str
    version: int
    estimator: Any
    methods: Mapping[str, str]
    signatures: Mapping[str, Signature]
    features: FeatureLayout
    extra: Mapping[str, object]

    @classmethod
    def build(cls, name: str, version: int, artifact: Artifact) -> LoadedModel:
        """Derive signatures, feature layout and metadata `extra` from a loaded artifact."""
        estimator = artifact.estimator
        layout = input_layout(estimator)
        methods = signature_methods(estimator)
        names = getattr(estimator, "feature_names_in_", None)
        features = FeatureLayout(
            layout=layout,
            feature_names=tuple(map(str, names)) if names is not None else artifact.feature_names,
            allow_nan=bool(get_tags(estimator).input_tags.allow_nan),
            estimator_name=type(estimator).__name__,
        )
        signatures = build_signatures(estimator, layout, methods)
        extra = _extra(artifact, features)
        return cls(name, version, estimator, methods, signatures, features, extra)

    def metadata(self) -> ModelMetadata:
        """This version's signatures and scikit-learn details."""
        return ModelMetadata(self.name, self.version, self.signatures, self.extra)

    def predict(self, signature_name: str, inputs: Tensors) -> dict[str, np.ndarray]:
        """Run the signature's method on `inputs["inputs"]`; return {"outputs": array}."""
        name = signature_name or DEFAULT_SIGNATURE
        signature = self.signatures.get(name)
        if signature is None:
            raise invalid_argument(
                f'Serving signature name: "{name}" not found in signature def. '
                f"Available signatures: {', '.join(sorted(self.signatures))}"
            )
        x = self._checked_input(inputs)
        spec = signature.outputs[OUTPUT_ALIAS]
        if len(x) == 0:
            trailing = spec.shape[1:] if spec.shape is not None else ()
            return {OUTPUT_ALIAS: to_output(np.empty((0, *trailing)), spec)}
        result = getattr(self.estimator, self.methods[name])(x)
        return {OUTPUT_ALIAS: to_output(result, spec)}

    def classify(self, signature_name: str, batch: ExampleBatch) -> list[Classification]:
        """(label, score) for every class, per example; scores from predict_proba if it exists."""
        x = self._examples_input("classify", signature_name, batch)
        scores = self._class_scores(x)
        labels = [_label(c) for c in self.estimator.classes_]
        return [Classification(tuple(zip(labels, map(float, row), strict=True))) for row in scores]

    def regress(self, signature_name: str, batch: ExampleBatch) -> list[float]:
        """One predicted value per example; only for single-output regressors."""
        x = self._examples_input("regress", signature_name, batch)
        y = np.asarray(self.estimator.predict(x), dtype=float)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise invalid_argument(
                f"Model {self.name} has {y.shape[1]} outputs per example; :regress needs a "
                "single-output regressor, use :predict instead"
            )
        return [float(v) for v in y]

    def _checked_input(self, inputs: Tensors) -> np.ndarray:
        if set(inputs) != {INPUT_ALIAS}:
            raise invalid_argument(_alias_mismatch(sorted(inputs)))
        return _checked_array(np.asarray(inputs[INPUT_ALIAS]), self.features.layout)

    def _examples_input(self, verb: str, signature_name: str, batch: ExampleBatch) -> np.ndarray:
        """Check that the model and signature suit `verb`; then `batch` as estimator input."""
        kind, is_kind = _VERB_KINDS[verb]
        if not is_kind(self.estimator):
            fits = [v for v, (_, check) in _VERB_KINDS.items() if check(self.estimator)]
            raise invalid_argument(
                f"Model {self.name} ({self.features.estimator_name}) is not a {kind}: "
                f"use :{fits[0] if fits else 'predict'} instead"
            )
        self._check_example_signature(signature_name, verb)
        return examples_to_input(batch, self.features)

    def _check_example_signature(self, signature_name: str, verb: str) -> None:
        if signature_name in _EXAMPLE_SIGNATURES:
            return
        if signature_name not in self.signatures:
            raise invalid_argument(f"No signature was found with the name: {signature_name}")
        raise invalid_argument(
            f"Signature {signature_name} is for :predict; :{verb} always uses the model's "
            f"{DEFAULT_SIGNATURE} signature (leave signature_name empty)"
        )

    def _class_scores(self, x: np.ndarray) -> np.ndarray:
        if _score_method(self.estimator) == "predict_proba":
            return np.asarray(self.estimator.predict_proba(x))
        scores = np.asarray(self.estimator.decision_function(x), dtype=float)
        return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores


def _score_method(estimator: Any) -> str:
    """Which method gives :classify its scores: predict_proba, else decision_function."""
    has_proba = callable(getattr(estimator, "predict_proba", None))
    return "predict_proba" if has_proba else "decision_function"


def _alias_mismatch(sent: list[str]) -> str:
    """TF Serving's wording for inputs that are not exactly the signature's aliases."""
    extra = ",".join(a for a in sent if a != INPUT_ALIAS)
    missing = "" if INPUT_ALIAS in sent else INPUT_ALIAS
    return (
        f"input size does not match signature: {len(sent)}!=1 "
        f"len({{{','.join(sent)}}}) != len({{{INPUT_ALIAS}}}). "
        f"Sent extra: {{{extra}}}. Missing but required: {{{missing}}}."
    )


def _checked_array(x: np.ndarray, layout: InputLayout) -> np.ndarray:
    shape = f"[{','.join(str(d) for d in x.shape)}]"
    if layout.text:
        if x.ndim != 1:
            raise invalid_argument(f"expected shape [-1] (one string per row), got {shape}")
        if x.dtype.kind not in "OSU":
            raise invalid_argument(f"expected DT_STRING values, got {x.dtype}")
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in x], dtype=object)
    n = layout.n_features
    if x.ndim != 2 or (n is not None and x.shape[1] != n):
        wanted = f"[-1,{n}] (rows of {n} features)" if n else "[-1,-1] (rows of features)"
        raise invalid_argument(f"expected shape {wanted}, got {shape}")
    if x.dtype.kind not in "biuf":
        raise invalid_argument(f"expected DT_DOUBLE values, got {x.dtype}")
    return x.astype(np.float64, copy=False)


def _label(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _extra(artifact: Artifact, features: FeatureLayout) -> dict[str, object]:
    running = running_versions()
    saved = dict(artifact.saved_with) if artifact.saved_with is not None else None
    mismatched = sorted(k for k, v in (saved or {}).items() if k in running and running[k] != v)
    estimator = artifact.estimator
    info: dict[str, object] = {
        "estimator": type(estimator).__name__,
        "format": artifact.fmt,
        "saved_with": saved,
        "running": running,
        "version_mismatch": "sklearn" in mismatched,
        "mismatched": mismatched,
        "feature_names": list(features.feature_names) if features.feature_names else None,
    }
    if is_classifier(estimator):
        info["classes"] = [_label(c) for c in estimator.classes_]
        info["classify_scores"] = _score_method(estimator)
    return {"sklearn": info}
