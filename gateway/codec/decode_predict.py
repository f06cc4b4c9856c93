"""The tensors of a predict request: row (`instances`) and columnar (`inputs`) formats.

Follows TF Serving's FillPredictRequestFromJson (spec P1, P2, P4, P5): dtypes come only
from the signature's inputs, shapes only from the JSON. Signature inputs are visited in
sorted name order (TF Serving iterates a protobuf map, whose order is unspecified).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from math import prod

import numpy as np
import numpy.typing as npt

from clients.types import ServingError, TensorSpec, invalid_argument
from gateway.codec.decode_fast import Shape, regular_rows, rows_to_array
from gateway.codec.decode_tensor import array_from_flat, exact_values, tensor_from_json
from gateway.codec.limits import DEFAULT_LIMITS, ElementCount, JsonLimits
from gateway.codec.values import (
    format_error,
    is_b64_object,
    json_value_to_string,
    signature_name_of,
)

Tensors = dict[str, npt.NDArray[np.generic]]
_MISSING = object()


class RequestFormat(enum.Enum):
    """Which key held the tensors; the response uses the matching format."""

    ROW = "instances"
    COLUMNAR = "inputs"


def decode_predict(
    doc: Mapping[str, object],
    inputs: Mapping[str, TensorSpec],
    limits: JsonLimits = DEFAULT_LIMITS,
) -> tuple[Tensors, RequestFormat]:
    """Build one tensor per signature input from a parsed predict request body.

    400 if the tensors hold more than `limits.max_elements` values in all, or a string
    longer than `limits.max_string_bytes`.
    """
    signature_name = signature_name_of(doc)  # TF Serving checks it before anything else
    if not inputs:
        name = signature_name or "DEFAULT"
        raise invalid_argument(f"Failed to get input map for signature: {name}")
    instances = doc.get("instances", _MISSING)
    columns = doc.get("inputs", _MISSING)
    if instances is not _MISSING and columns is not _MISSING:
        raise format_error(
            doc,
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
        )
    if instances is not _MISSING:
        if not isinstance(instances, list):
            raise format_error(doc, "Expecting 'instances' to be an list/array")
        if not instances:
            raise format_error(doc, "No values in 'instances' array")
        return _decode_rows(instances, inputs, limits), RequestFormat.ROW
    if columns is not _MISSING:
        return _decode_columns(columns, inputs, limits), RequestFormat.COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _is_element_object(value: object) -> bool:
    return isinstance(value, dict) and not is_b64_object(value)


def _decode_columns(
    columns: object, inputs: Mapping[str, TensorSpec], limits: JsonLimits
) -> Tensors:
    names = sorted(inputs)
    if not isinstance(columns, dict) or is_b64_object(columns):
        if len(names) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        count = ElementCount(limits, [columns])
        return {names[0]: tensor_from_json(columns, inputs[names[0]].dtype, count)}
    tensors: Tensors = {}
    count = ElementCount(limits, [columns.get(name) for name in names])
    for name in names:
        if name not in columns:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = tensor_from_json(columns[name], inputs[name].dtype, count)
    return tensors


def _decode_rows(
    instances: list[object], inputs: Mapping[str, TensorSpec], limits: JsonLimits
) -> Tensors:
    if not isinstance(instances[0], dict) and len(inputs) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    by_object = _is_element_object(instances[0])
    fast = _fast_rows(instances, inputs, by_object, limits)
    return fast if fast is not None else _RowBatcher(inputs, limits).run(instances, by_object)


def _fast_rows(
    instances: list[object], inputs: Mapping[str, TensorSpec], by_object: bool, limits: JsonLimits
) -> Tensors | None:
    """Stack every row at once when that is certainly what the row-by-row walk yields."""
    names = sorted(inputs)
    if not by_object:
        columns = {names[0]: instances}
    elif all(
        isinstance(row, dict) and _is_element_object(row) and row.keys() == inputs.keys()
        for row in instances
    ):
        columns = {name: [row[name] for row in instances] for name in names}  # type: ignore[index]
    else:
        return None
    tensors: Tensors = {}
    count = ElementCount(limits, list(columns.values()))
    for name, value in columns.items():
        regular = regular_rows(value, inputs[name].dtype)
        if regular is None:
            return None
        shape, rows = regular
        count.add(prod(shape))
        tensor = rows_to_array(rows, inputs[name].dtype, shape, limits)
        if tensor is None:
            return None
        tensors[name] = tensor
    return tensors


class _RowBatcher:
    """TF Serving's FillTensorMapFromInstancesList, element by element, with its errors."""

    def __init__(self, inputs: Mapping[str, TensorSpec], limits: JsonLimits) -> None:
        self.inputs = inputs
        self.limits = limits
        self.values: dict[str, list[object]] = {}
        self.shapes: dict[str, Shape] = {}
        self.sizes: dict[str, int] = {}

    def run(self, instances: list[object], by_object: bool) -> Tensors:
        names = sorted(self.inputs)
        for index, row in enumerate(instances):
            if by_object:
                self.add_object_row(index, row, names)
            elif _is_element_object(row):
                raise invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            else:
                self.add_item(row, names[0], f"{index}")
        self.limits.check_elements(sum(map(len, self.values.values())))
        return {
            name: array_from_flat(
                values, self.inputs[name].dtype, (len(instances), *self.shapes[name])
            )
            for name, values in self.values.items()
        }

    def add_object_row(self, index: int, row: object, names: list[str]) -> None:
        if not _is_element_object(row):
            raise invalid_argument(f"Expecting object but got list at item {index} of input list")
        assert isinstance(row, dict)
        for key, value in row.items():
            self.add_item(value, key, f"{index} key: {key}")
        if sorted(row) != names:
            raise invalid_argument(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{json_value_to_string(row)} keys must be equal to: {','.join(names)}"
            )

    def add_item(self, value: object, name: str, where: str) -> None:
        try:
            self.check_and_add(value, name)
        except ServingError as error:
            raise invalid_argument(
                f"Failed to process element: {where} of 'instances' list. "
                f"Error: {error.code.name}: {error.message}"
            ) from None

    def check_and_add(self, value: object, name: str) -> None:
        if name not in self.inputs:
            raise invalid_argument(f"JSON object: does not have named input: {name}")
        flat, shape = exact_values(value, self.inputs[name].dtype, self.limits)
        if name not in self.sizes:
            self.sizes[name], self.shapes[name] = len(flat), shape
            self.values[name] = []
        elif self.sizes[name] != len(flat):
            raise invalid_argument(
                f"Expecting tensor size: {self.sizes[name]} but got: {len(flat)}"
            )
        elif self.shapes[name] != shape:
            raise invalid_argument(
                f"Expecting shape {_shape_text(self.shapes[name])} but got: {_shape_text(shape)}"
            )
        self.values[name].extend(flat)


def _shape_text(shape: Shape) -> str:
    return "[" + ",".join(map(str, shape)) + "]"
