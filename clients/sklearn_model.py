"""One loaded scikit-learn model version: its signatures, metadata and the blocking calls.

A `clients.inprocess.loader.HostedVersion`: `predict`, `classify` and `regress` are
synchronous and may be slow; the host runs them in its thread pool. The `*_call` methods are
their batchable form: cheap checks that run on the event loop and give a `RowCall` (rows plus
how to finish the result) for `row_op`, or None when the request should run on its own.
Errors raised by the estimator itself propagate unchanged and are translated by the loader.

Per-call overhead: for an estimator that rejects NaN and holds no other estimators, input that
`np.isfinite` passes runs under `sklearn.config_context(assume_finite=True)`, so scikit-learn
skips a check we just made; other input runs with the normal checks (and gets their errors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import config_context
from sklearn.base import is_classifier, is_regressor
from sklearn.utils import get_tags

from clients.base import Tensors
from clients.inprocess.batching import RowCall, RowOp
from clients.sklearn_artifacts import Artifact, running_versions
from clients.sklearn_features import FeatureLayout, alias_mismatch, checked_rows, examples_to_input
from clients.sklearn_signatures import (
    INPUT_ALIAS,
    OUTPUT_ALIAS,
    build_signatures,
    input_layout,
    is_composite,
    row_wise,
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
# Batchable requests are checked on the event loop: at most this many numbers in an array,
# or values in examples (converted one by one in Python); bigger requests run on their own.
_LOOP_ELEMENTS = 1 << 16
_LOOP_VALUES = 4096


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
    batchable: frozenset[str] = frozenset()
    """`row_op` keys whose requests may be merged: methods, "classify", "regress"."""
    assume_finite: bool = False
    labels: tuple[str, ...] = ()

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
        ops = {*methods.values(), *(v for v, (_, fits) in _VERB_KINDS.items() if fits(estimator))}
        classes = getattr(estimator, "classes_", None) if is_classifier(estimator) else None
        return cls(
            name,
            version,
            estimator,
            methods,
            signatures,
            features,
            extra,
            batchable=frozenset(ops) if row_wise(estimator) else frozenset(),
            assume_finite=not (features.allow_nan or layout.text or is_composite(estimator)),
            labels=tuple(map(_label, classes)) if classes is not None else (),
        )

    def metadata(self) -> ModelMetadata:
        """This version's signatures and scikit-learn details."""
        return ModelMetadata(self.name, self.version, self.signatures, self.extra)

    def predict(self, signature_name: str, inputs: Tensors) -> dict[str, np.ndarray]:
        """Run the signature's method on `inputs["inputs"]`; return {"outputs": array}."""
        method = self._method(signature_name)
        x = checked_rows(self._input(inputs), self.features.layout)
        if len(x) == 0:
            spec = self.signatures[signature_name or DEFAULT_SIGNATURE].outputs[OUTPUT_ALIAS]
            trailing = spec.shape[1:] if spec.shape is not None else ()
            return {OUTPUT_ALIAS: to_output(np.empty((0, *trailing)), spec)}
        return _outputs(self.row_op(method)(x))

    def predict_call(
        self, signature_name: str, inputs: Tensors, max_rows: int
    ) -> RowCall[dict[str, np.ndarray]] | None:
        """`predict` as a batchable call, or None if it should run on its own."""
        method = self._method(signature_name)
        x = self._input(inputs)
        if method not in self.batchable or not _fits(x, max_rows):
            return None
        return RowCall(method, checked_rows(x, self.features.layout), _outputs)

    def classify(self, signature_name: str, batch: ExampleBatch) -> list[Classification]:
        """(label, score) for every class, per example; scores from predict_proba if it exists."""
        x = self._examples_input("classify", signature_name, batch)
        return self._classifications(self.row_op("classify")(x))

    def regress(self, signature_name: str, batch: ExampleBatch) -> list[float]:
        """One predicted value per example; only for single-output regressors."""
        x = self._examples_input("regress", signature_name, batch)
        return _floats(self.row_op("regress")(x))

    def classify_call(
        self, signature_name: str, batch: ExampleBatch, max_rows: int
    ) -> RowCall[list[Classification]] | None:
        """`classify` as a batchable call, or None if it should run on its own."""
        if not self._examples_fit("classify", batch, max_rows):
            return None
        x = self._examples_input("classify", signature_name, batch)
        return RowCall("classify", x, self._classifications)

    def regress_call(
        self, signature_name: str, batch: ExampleBatch, max_rows: int
    ) -> RowCall[list[float]] | None:
        """`regress` as a batchable call, or None if it should run on its own."""
        if not self._examples_fit("regress", batch, max_rows):
            return None
        return RowCall("regress", self._examples_input("regress", signature_name, batch), _floats)

    def row_op(self, key: str) -> RowOp:
        """The row-wise computation behind a `RowCall` key; runs in the pool."""
        if key == "classify":
            return self._class_scores
        if key == "regress":
            return self._regress_values
        spec = next(s for n, s in self.signatures.items() if self.methods[n] == key)
        output = spec.outputs[OUTPUT_ALIAS]
        return lambda x: to_output(self._call(key, x), output)

    def _call(self, method: str, x: np.ndarray) -> Any:
        """`estimator.method(x)`, skipping scikit-learn's finiteness check once we made it."""
        fn = getattr(self.estimator, method)
        if self.assume_finite and x.dtype.kind == "f" and np.isfinite(x).all():
            with config_context(assume_finite=True):
                return fn(x)
        return fn(x)

    def _method(self, signature_name: str) -> str:
        name = signature_name or DEFAULT_SIGNATURE
        method = self.methods.get(name)
        if method is None:
            raise invalid_argument(
                f'Serving signature name: "{name}" not found in signature def. '
                f"Available signatures: {', '.join(sorted(self.signatures))}"
            )
        return method

    def _input(self, inputs: Tensors) -> np.ndarray:
        if len(inputs) != 1 or INPUT_ALIAS not in inputs:
            raise invalid_argument(alias_mismatch(sorted(inputs)))
        return np.asarray(inputs[INPUT_ALIAS])

    def _examples_fit(self, verb: str, batch: ExampleBatch, max_rows: int) -> bool:
        rows = len(batch.examples)
        values = rows * (self.features.layout.n_features or 1)
        return verb in self.batchable and 0 < rows <= max_rows and values <= _LOOP_VALUES

    def _classifications(self, scores: np.ndarray) -> list[Classification]:
        labels = self.labels
        return [Classification(tuple(zip(labels, map(float, row), strict=True))) for row in scores]

    def _regress_values(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(self._call("predict", x), dtype=float)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise invalid_argument(
                f"Model {self.name} has {y.shape[1]} outputs per example; :regress needs a "
                "single-output regressor, use :predict instead"
            )
        return y

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
            return np.asarray(self._call("predict_proba", x))
        scores = np.asarray(self._call("decision_function", x), dtype=float)
        return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores


def _score_method(estimator: Any) -> str:
    """Which method gives :classify its scores: predict_proba, else decision_function."""
    has_proba = callable(getattr(estimator, "predict_proba", None))
    return "predict_proba" if has_proba else "decision_function"


def _outputs(rows: np.ndarray) -> dict[str, np.ndarray]:
    return {OUTPUT_ALIAS: rows}


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def _fits(x: np.ndarray, max_rows: int) -> bool:
    """Whether `x` is small enough to check on the event loop and merge with others."""
    return x.ndim > 0 and 0 < len(x) <= max_rows and x.size <= _LOOP_ELEMENTS


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
        "warnings": list(artifact.warnings),
    }
    if is_classifier(estimator):
        info["classes"] = [_label(c) for c in estimator.classes_]
        info["classify_scores"] = _score_method(estimator)
    return {"sklearn": info}
