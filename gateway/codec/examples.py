"""Classify and regress bodies: tf.Example features in, results out (spec C1, C2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from clients.types import (
    Classification,
    Example,
    ExampleBatch,
    Feature,
    FeatureKind,
    invalid_argument,
)
from gateway.codec.encode_text import tensor_texts
from gateway.codec.limits import DEFAULT_LIMITS, JsonLimits
from gateway.codec.values import (
    decode_b64_object,
    format_error,
    is_b64_object,
    json_string,
    json_type_name,
    utf8,
)

_INT64_MAX = 2**63 - 1
_MISSING = object()


def decode_examples(doc: Mapping[str, object], limits: JsonLimits = DEFAULT_LIMITS) -> ExampleBatch:
    """The `context` and `examples` of a classify/regress body, checked in TF Serving's order.

    400 if all features together hold more than `limits.max_elements` values, or a string
    longer than `limits.max_string_bytes`.
    """
    context_value = doc.get("context", _MISSING)
    context = None if context_value is _MISSING else _example(context_value, limits)
    examples = doc.get("examples", _MISSING)
    if examples is _MISSING:
        raise format_error(
            doc, "When method is classify, key 'examples' is expected and was not found"
        )
    if not isinstance(examples, list):
        raise format_error(doc, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise format_error(doc, "'examples' value is an empty array")
    count = sum(map(_value_count, examples)) + _value_count(context_value)
    limits.check_elements(count, "feature values")
    return ExampleBatch(
        examples=tuple(_example(item, limits) for item in examples), context=context
    )


def encode_classify(results: Sequence[Classification]) -> bytes:
    """`{"results": [[[label, score], ...], ...]}` with float32 scores."""
    if not results:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    scores = _float32_texts([score for result in results for _, score in result.classes])
    position = iter(scores)
    rows = [
        "["
        + ", ".join(f"[{json_string(label)}, {next(position)}]" for label, _ in result.classes)
        + "]"
        for result in results
    ]
    return ('{"results": [' + ", ".join(rows) + "]}").encode("utf-8", "surrogateescape")


def encode_regress(values: Sequence[float]) -> bytes:
    """`{"results": [value, ...]}` with float32 values."""
    if not values:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    return ('{"results": [' + ", ".join(_float32_texts(list(values))) + "]}").encode()


def _float32_texts(values: list[float]) -> list[str]:
    with np.errstate(over="ignore"):
        array = np.array(values, dtype=np.float32)
    return tensor_texts(array, split_rows=True)


def _value_count(example: object) -> int:
    """How many feature values an example holds (0 for anything but an object)."""
    if not isinstance(example, dict):
        return 0
    return sum(len(content) if isinstance(content, list) else 1 for content in example.values())


def _example(value: object, limits: JsonLimits) -> Example:
    if not isinstance(value, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {json_type_name(value)}")
    return {name: _feature(name, content, limits) for name, content in value.items()}


def _feature(name: str, content: object, limits: JsonLimits) -> Feature:
    builder = _FeatureBuilder(name, limits)
    for item in content if isinstance(content, list) else [content]:
        builder.add(item)
    return builder.build()


class _FeatureBuilder:
    """TF Serving's AddValueToFeature: the first element fixes the feature's kind."""

    def __init__(self, name: str, limits: JsonLimits) -> None:
        self.name = name
        self.limits = limits
        self.kind: FeatureKind | None = None
        self.values: list[object] = []

    def add(self, item: object) -> None:
        if (
            item is None
            or isinstance(item, list)
            or (isinstance(item, dict) and not is_b64_object(item))
        ):
            kind = json_type_name(item)
            raise invalid_argument(
                f"Feature: {self.name} has element with unexpected JSON type: {kind}"
            )
        if isinstance(item, bool):
            self.append("int64", int(item))
        elif isinstance(item, dict):
            self.expect("bytes")
            self.append("bytes", decode_b64_object(item, self.limits))
        elif isinstance(item, str):
            self.limits.check_text(item)
            self.append("bytes", utf8(item))
        elif isinstance(item, float):
            self.append("float", item)
        else:
            self.expect("int64")
            if isinstance(item, int) and item > _INT64_MAX:
                raise invalid_argument(
                    f"Feature: {self.name} has uint64_t element. Only int64_t is supported."
                )
            self.append("int64", item)

    def expect(self, kind: FeatureKind) -> None:
        if self.kind not in (None, kind):
            raise invalid_argument(
                f"Unexpected element type in feature: {self.name} expecting type: {self.kind}"
            )

    def append(self, kind: FeatureKind, value: object) -> None:
        self.expect(kind)
        self.kind = kind
        self.values.append(value)

    def build(self) -> Feature:
        if self.kind == "float":
            with np.errstate(over="ignore"):
                floats = np.array(self.values, dtype=np.float32).tolist()
            return Feature(kind="float", values=tuple(floats))
        return Feature(kind=self.kind, values=tuple(self.values))  # type: ignore[arg-type]
