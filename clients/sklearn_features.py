"""Turning classify/regress examples (tf.train.Example features) into estimator input rows.

An example gives one row in one of two ways:

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
