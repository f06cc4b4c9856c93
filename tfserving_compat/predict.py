"""Predict and GetModelMetadata on a loaded version, as TF Serving's predict_util.cc and
get_model_metadata_impl.cc do them (messages and codes kept verbatim)."""

from __future__ import annotations

from typing import Any

import grpc
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

from tfserving_compat.errors import (
    ServingError,
    failed_precondition,
    internal,
    invalid_argument,
)
from tfserving_compat.loader import LoadedVersion
from tfserving_compat.tensors import to_ndarray, to_proto

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
SIGNATURE_DEF_FIELD = "signature_def"


def _joined(keys: Any) -> str:
    """absl::StrJoin of a std::set<string>: sorted, comma-separated."""
    return ",".join(sorted(keys))


def run_predict(request: Any, loaded: LoadedVersion, version: int, check_method_name: bool) -> Any:
    """predict_util.cc RunPredict: validate, run the signature, fill the response."""
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = loaded.signature_defs.get(signature_name)
    if signature is None:
        raise failed_precondition(f'Serving signature key "{signature_name}" not found.')
    response = predict_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.signature_name = signature_name
    response.model_spec.version.value = version

    if check_method_name and signature.method_name not in (
        PREDICT_METHOD,
        CLASSIFY_METHOD,
        REGRESS_METHOD,
    ):
        raise internal(
            "Expected prediction signature method_name to be one of {"
            f"{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. "
            f"Was: {signature.method_name}"
        )
    _verify_inputs_size(signature, request)
    feeds = _input_values(signature, request)
    names, aliases = _outputs(signature, request)
    outputs = loaded.run(feeds, names)
    if len(outputs) != len(aliases):
        raise ServingError(grpc.StatusCode.UNKNOWN, "Predict internal error")
    for alias, value in zip(aliases, outputs, strict=True):
        response.outputs[alias].CopyFrom(to_proto(value))
    return response


def _verify_inputs_size(signature: Any, request: Any) -> None:
    sent, expected = set(request.inputs), set(signature.inputs)
    if len(sent) > len(expected) or (len(sent) < len(expected) and not signature.defaults):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{_joined(sent)}}}) != len({{{_joined(expected)}}}). "
            f"Sent extra: {{{_joined(sent - expected)}}}. "
            f"Missing but required: {{{_joined(expected - sent)}}}."
        )


def _input_values(signature: Any, request: Any) -> list[tuple[str, Any]]:
    """tensorflow/cc/saved_model/util.cc GetInputValues (defaults fill missing inputs)."""
    feeds: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for alias in sorted(signature.inputs):
        feed_name = signature.inputs[alias].name
        if alias in request.inputs:
            proto = request.inputs[alias]
            seen.add(alias)
        elif alias in signature.defaults:
            proto = signature.defaults[alias]
        else:
            raise invalid_argument(
                f"Signature input alias: {alias}(feed name: {feed_name}) not found in request "
                "and no default value provided. Inputs expected to be in the request "
                f"{{{_joined(request.inputs)}}}, or default input alias set: "
                f"{_joined(signature.defaults)}"
            )
        try:
            value = to_ndarray(proto)
        except Exception as exc:
            raise invalid_argument(f"tensor parsing error: {alias}") from exc
        feeds.append((feed_name, value))
    if request.inputs and len(seen) != len(request.inputs):
        raise invalid_argument(
            f"Inputs contains invalid name. Used request inputs: {_joined(seen)}, "
            f"request input: {_joined(request.inputs)}"
        )
    return feeds


def _outputs(signature: Any, request: Any) -> tuple[list[str], list[str]]:
    """Tensor names and aliases to fetch: the output_filter, or every output."""
    names: list[str] = []
    aliases: list[str] = []
    for alias in request.output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{_joined(signature.outputs)}}}."
            )
        if alias in aliases:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        names.append(signature.outputs[alias].name)
        aliases.append(alias)
    if not names:
        for alias in sorted(signature.outputs):
            names.append(signature.outputs[alias].name)
            aliases.append(alias)
    return names, aliases


def validate_metadata_request(request: Any) -> None:
    """get_model_metadata_impl.cc ValidateGetModelMetadataRequest."""
    if not request.metadata_field:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise invalid_argument(f"Metadata field {field} is not supported")


def model_metadata(name: str, version: int, loaded: LoadedVersion) -> Any:
    """The response: the served name and version, and the whole SignatureDefMap."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = name
    response.model_spec.version.value = version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in loaded.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response
