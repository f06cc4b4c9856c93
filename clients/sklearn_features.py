"""Turning requests into estimator input rows: predict tensors and classify/regress examples.

`checked_rows` checks a predict request's "inputs" tensor against the model's input layout.
For classify and regress (tf.train.Example features), an example gives one row in one of two
ways:

- named features, one numeric value each, matched to the model's feature names
  (`feature_names_in_`, else the names saved in `metadata.json`);
- a single feature "inputs" holding all n_features values in order (for a text model:
  one bytes value, the text).

The batch's `context` supplies features shared by every example. A feature present in both
the context and an example is an error, as TF Serving's documentation requires.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clients.sklearn_signatures import INPUT_ALIAS, InputLayout
from clients.types import Example, ExampleBatch, Feature, ServingError, invalid_argument


@dataclass(frozen=True)
class FeatureLayout:
    """What the estimator expects: its input layout, feature names and NaN tolerance."""

    layout: InputLayout
    feature_names: tuple[str, ...] | None
    allow_nan: bool
    estimator_name: str


def examples_to_input(batch: ExampleBatch, spec: FeatureLayout) -> np.ndarray:
    """The estimator input for `batch`: a float matrix, or an object array of str for text."""
    rows = [_row(i, _merge(i, batch.context, ex), spec) for i, ex in enumerate(batch.examples)]
    if spec.layout.text:
        return np.array(rows, dtype=object)
    return np.array(rows, dtype=np.float64)


def _merge(index: int, context: Example | None, example: Example) -> Example:
    if not context:
        return example
    both = sorted(set(context) & set(example))
    if both:
        raise _error(index, both[0], "is in both the context and the example")
    return {**context, **example}


def _row(index: int, example: Example, spec: FeatureLayout) -> str | list[float]:
    if spec.layout.text:
        return _text(index, example)
    names = spec.feature_names
    if set(example) == {INPUT_ALIAS} and (names is None or INPUT_ALIAS not in names):
        values = _numbers(index, INPUT_ALIAS, example[INPUT_ALIAS], spec)
        n_features = spec.layout.n_features
        if n_features is not None and len(values) != n_features:
            raise _error(index, INPUT_ALIAS, f"must hold {n_features} values, got {len(values)}")
        return values
    if names is None:
        n = spec.layout.n_features or "all"
        raise invalid_argument(
            f"Example {index}: the model has no feature names; send {n} values in order "
            f"in one feature '{INPUT_ALIAS}'"
        )
    return _named_row(index, example, names, spec)


def _named_row(
    index: int, example: Example, names: Sequence[str], spec: FeatureLayout
) -> list[float]:
    unknown = sorted(set(example) - set(names))
    if unknown:
        raise _error(index, unknown[0], f"is not a feature of the model ({_listing(names)})")
    row: list[float] = []
    for name in names:
        if name not in example:
            raise _error(index, name, f"is missing ({_listing(names)})")
        values = _numbers(index, name, example[name], spec)
        if len(values) != 1:
            raise _error(index, name, f"must hold exactly one value, got {len(values)}")
        row.extend(values)
    return row


def _numbers(index: int, name: str, feature: Feature, spec: FeatureLayout) -> list[float]:
    if feature.kind == "bytes":
        raise _error(index, name, "must be numeric (float or int64), got bytes")
    values = [float(v) for v in feature.values]
    for value in values:
        if not spec.allow_nan and not math.isfinite(value):
            what = "NaN" if math.isnan(value) else "infinite"
            raise _error(index, name, f"is {what}, which {spec.estimator_name} does not accept")
    return values


def _text(index: int, example: Example) -> str:
    feature = example.get(INPUT_ALIAS)
    if set(example) != {INPUT_ALIAS} or feature is None:
        raise invalid_argument(
            f"Example {index}: expected one feature '{INPUT_ALIAS}' holding the text, "
            f"got features: {', '.join(sorted(example)) or 'none'}"
        )
    if feature.kind != "bytes" or len(feature.values) != 1:
        raise _error(index, INPUT_ALIAS, "must hold exactly one bytes (text) value")
    value = feature.values[0]
    assert isinstance(value, bytes)
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise _error(index, INPUT_ALIAS, "is not valid UTF-8 text") from exc


def _listing(names: Sequence[str]) -> str:
    return "expected: " + ", ".join(names) if names else ""


def _error(index: int, feature: str, problem: str) -> ServingError:
    return invalid_argument(f"Example {index}: feature '{feature}' {problem}")


def alias_mismatch(sent: list[str]) -> str:
    """TF Serving's wording for inputs that are not exactly the signature's aliases."""
    extra = ",".join(a for a in sent if a != INPUT_ALIAS)
    missing = "" if INPUT_ALIAS in sent else INPUT_ALIAS
    return (
        f"input size does not match signature: {len(sent)}!=1 "
        f"len({{{','.join(sent)}}}) != len({{{INPUT_ALIAS}}}). "
        f"Sent extra: {{{extra}}}. Missing but required: {{{missing}}}."
    )


def checked_rows(x: np.ndarray, layout: InputLayout) -> np.ndarray:
    """`x` checked against `layout`: float64 rows, or an object array of str for text."""
    if layout.text:
        if x.ndim != 1:
            raise invalid_argument(f"expected shape [-1] (one string per row), got {_shape(x)}")
        if x.dtype.kind not in "OSU":
            raise invalid_argument(f"expected DT_STRING values, got {x.dtype}")
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in x], dtype=object)
    n = layout.n_features
    if x.ndim != 2 or (n is not None and x.shape[1] != n):
        wanted = f"[-1,{n}] (rows of {n} features)" if n else "[-1,-1] (rows of features)"
        raise invalid_argument(f"expected shape {wanted}, got {_shape(x)}")
    if x.dtype.kind not in "biuf":
        raise invalid_argument(f"expected DT_DOUBLE values, got {x.dtype}")
    return x.astype(np.float64, copy=False)


def _shape(x: np.ndarray) -> str:
    return f"[{','.join(str(d) for d in x.shape)}]"
