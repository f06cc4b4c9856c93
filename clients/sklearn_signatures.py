"""TF Serving signatures for a scikit-learn estimator, and numpy <-> DType conversions.

Every signature has one input alias "inputs" and one output alias "outputs":

- "serving_default" runs `predict` (or `transform` for an estimator without `predict`);
- "predict", "predict_proba", "predict_log_proba", "decision_function", "transform" and
  "score_samples" run the method of that name, one signature per method the estimator has.

The input is DT_DOUBLE with shape (-1, n_features_in_), or DT_STRING with shape (-1,) for an
estimator that takes raw text (a text vectorizer, possibly first in a Pipeline).
TensorSpec names are "<argument>:0" for inputs ("X:0", the argument every method takes)
and "<method>:0" for outputs ("predict_proba:0"). An output's dtype and shape are found by
running the method on one all-zero row at load time; when that fails (or the number of
features is unknown), the dtype falls back to the classifier's `classes_` dtype (predict)
or DT_DOUBLE, and the rank is unknown.

`row_wise` decides whether requests may be merged into one call (see `clients.inprocess.batching`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils import get_tags

from clients.dtypes import DTYPE_OF_FIXED_WIDTH, FIXED_WIDTH_NUMPY_OF
from clients.types import DEFAULT_SIGNATURE, PREDICT_METHOD, DType, Signature, TensorSpec

INPUT_ALIAS = "inputs"
OUTPUT_ALIAS = "outputs"
SIGNATURE_METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
    "score_samples",
)

# scikit-learn classes whose methods are not row-wise for every parameter setting:
# a FunctionTransformer runs any function; DummyClassifier draws random labels per call.
_NOT_ROW_WISE = frozenset({"FunctionTransformer", "DummyClassifier"})


@dataclass(frozen=True)
class InputLayout:
    """What one row of input is: a text string, or `n_features` numbers (None: unknown)."""

    text: bool
    n_features: int | None

    def spec(self) -> TensorSpec:
        """The TensorSpec of the "inputs" alias."""
        if self.text:
            return TensorSpec("X:0", DType.DT_STRING, (-1,))
        return TensorSpec("X:0", DType.DT_DOUBLE, (-1, self.n_features or -1))

    def zero_row(self) -> np.ndarray | None:
        """One row of neutral input (an empty string or zeros) to probe outputs; None if unknown."""
        if self.text:
            return np.array([""], dtype=object)
        return None if self.n_features is None else np.zeros((1, self.n_features))


def dtype_of(array_dtype: np.dtype[Any]) -> DType:
    """The TensorFlow dtype for a numpy dtype; text and objects are DT_STRING."""
    if array_dtype.kind in "USO":
        return DType.DT_STRING
    return DTYPE_OF_FIXED_WIDTH.get(array_dtype, DType.DT_DOUBLE)


def dense(value: Any) -> np.ndarray:
    """A method's result as a dense numpy array (scipy sparse matrices have `toarray`)."""
    return np.asarray(value.toarray() if hasattr(value, "toarray") else value)


def to_output(value: Any, spec: TensorSpec) -> np.ndarray:
    """A method's result as the array `spec` promises: dense, in its dtype, strings as bytes."""
    array = dense(value)
    if spec.dtype == DType.DT_STRING:
        return np.array([_as_bytes(v) for v in array.ravel()], dtype=object).reshape(array.shape)
    return array.astype(FIXED_WIDTH_NUMPY_OF.get(spec.dtype, np.float64), copy=False)


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def input_layout(estimator: Any) -> InputLayout:
    """Whether `estimator` takes text, and how many features it takes otherwise."""
    first = estimator
    while hasattr(first, "steps"):
        first = first.steps[0][1]
    if get_tags(first).input_tags.string:
        return InputLayout(text=True, n_features=None)
    n_features = getattr(estimator, "n_features_in_", None)
    return InputLayout(text=False, n_features=int(n_features) if n_features is not None else None)


def signature_methods(estimator: Any) -> dict[str, str]:
    """Signature name -> estimator method, for every method the estimator has."""
    methods = {m: m for m in SIGNATURE_METHODS if callable(getattr(estimator, m, None))}
    default = "predict" if "predict" in methods else "transform"
    return {DEFAULT_SIGNATURE: default, **methods}


def build_signatures(
    estimator: Any, layout: InputLayout, methods: Mapping[str, str]
) -> dict[str, Signature]:
    """One predict-method Signature per entry of `methods`, outputs probed on a zero row."""
    inputs = {INPUT_ALIAS: layout.spec()}
    outputs = {m: _output_spec(estimator, layout, m) for m in set(methods.values())}
    return {
        name: Signature(inputs, {OUTPUT_ALIAS: outputs[method]}, PREDICT_METHOD)
        for name, method in sorted(methods.items())
    }


def _output_spec(estimator: Any, layout: InputLayout, method: str) -> TensorSpec:
    name = f"{method}:0"
    array = _probe(estimator, layout, method)
    if array is not None:
        return TensorSpec(name, dtype_of(array.dtype), (-1, *array.shape[1:]))
    classes = getattr(estimator, "classes_", None)
    if method == "predict" and is_classifier(estimator) and classes is not None:
        return TensorSpec(name, dtype_of(np.asarray(classes).dtype), None)
    return TensorSpec(name, DType.DT_DOUBLE, None)


def _probe(estimator: Any, layout: InputLayout, method: str) -> np.ndarray | None:
    """`method`'s result for one neutral row, or None when there is none or it is rejected."""
    row = layout.zero_row()
    if row is None:
        return None
    try:
        with np.errstate(all="ignore"):  # e.g. predict_log_proba of a zero probability
            return dense(getattr(estimator, method)(row))
    except Exception:  # e.g. a model whose pipeline takes the log of its input
        return None


def row_wise(estimator: Any) -> bool:
    """Whether every method computes each output row from its input row alone.

    True for scikit-learn's own estimators (nested ones included), except those that run a
    user function or draw random numbers per call. Anything else (a class from another
    library, a callable parameter such as a custom tokenizer or metric) is assumed not to be.
    """
    parts = [estimator, *_params(estimator, deep=True).values()]
    for part in parts:
        if isinstance(part, type):
            continue
        if hasattr(part, "get_params"):
            cls = type(part)
            if not cls.__module__.startswith("sklearn.") or cls.__name__ in _NOT_ROW_WISE:
                return False
        elif callable(part):
            return False
    return True


def is_composite(estimator: Any) -> bool:
    """Whether `estimator` holds other estimators (a Pipeline, an ensemble of estimators, ...)."""
    return any(
        (hasattr(value, "get_params") and not isinstance(value, type))
        or (
            isinstance(value, list | tuple)
            and any(hasattr(v, "get_params") or isinstance(v, tuple) for v in value)
        )
        for value in _params(estimator, deep=False).values()
    )


def _params(estimator: Any, *, deep: bool) -> dict[str, Any]:
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return {}
    try:
        return dict(get_params(deep=deep))
    except Exception:  # a broken or exotic get_params: assume the worst in the callers
        return {"": _opaque}


def _opaque() -> None:
    """Stands for parameters we could not read."""
