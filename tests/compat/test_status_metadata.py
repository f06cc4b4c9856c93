"""GetModelStatus, GetModelMetadata, and version / label resolution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tests.compat.conftest import TESTDATA
from tests.compat.helpers import assert_error, predict_request
from tests.conftest import needs_tfserving_testdata

NOT_FOUND = grpc.StatusCode.NOT_FOUND
INVALID = grpc.StatusCode.INVALID_ARGUMENT
State = get_model_status_pb2.ModelVersionStatus.State


@pytest.fixture(scope="module")
def models(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(channel)


def status_request(name: str, version: int | None = None, label: str | None = None) -> Any:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    return request


def rows(response: Any) -> list[tuple[int, str, int, str]]:
    return [
        (s.version, State.Name(s.state), s.status.error_code, s.status.error_message)
        for s in response.model_version_status
    ]


# ---- status ----------------------------------------------------------------------------


def test_status_available(models: model_service_pb2_grpc.ModelServiceStub) -> None:
    assert rows(models.GetModelStatus(status_request("half_plus_two"))) == [
        (123, "AVAILABLE", 0, "")
    ]


def test_status_of_failed_model(
    models: model_service_pb2_grpc.ModelServiceStub, tf_test_models: Path
) -> None:
    path = tf_test_models / "bad_half_plus_two" / "00000123"
    assert rows(models.GetModelStatus(status_request("bad_half_plus_two"))) == [
        (
            123,
            "END",
            grpc.StatusCode.NOT_FOUND.value[0],
            f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {path}. "
            "Check that the directory exists and that you have the right permissions for "
            "accessing it.",
        )
    ]


def test_status_versions_newest_first(models: model_service_pb2_grpc.ModelServiceStub) -> None:
    expected = [(124, "AVAILABLE", 0, ""), (123, "AVAILABLE", 0, "")]
    assert rows(models.GetModelStatus(status_request("two_versions"))) == expected
    # a label is ignored by GetModelStatus, even an unknown one
    assert rows(models.GetModelStatus(status_request("two_versions", label="nope"))) == expected
    assert rows(models.GetModelStatus(status_request("two_versions", version=123))) == [
        (123, "AVAILABLE", 0, "")
    ]


def test_status_errors(models: model_service_pb2_grpc.ModelServiceStub) -> None:
    assert_error(
        models.GetModelStatus,
        status_request("nope"),
        NOT_FOUND,
        "Could not find any versions of model nope",
    )
    assert_error(
        models.GetModelStatus,
        status_request("two_versions", version=7),
        NOT_FOUND,
        "Could not find version 7 of model two_versions",
    )
    assert_error(
        models.GetModelStatus,
        get_model_status_pb2.GetModelStatusRequest(),
        INVALID,
        "Missing ModelSpec",
    )


# ---- versions and labels ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "label", "served"),
    [
        (None, None, 124),
        (123, None, 123),
        (124, None, 124),
        (None, "stable", 123),
        (None, "canary", 124),
    ],
)
def test_version_resolution(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    version: int | None,
    label: str | None,
    served: int,
) -> None:
    response = stub.Predict(
        predict_request("two_versions", [[2.0]], version=version, label=label), timeout=30
    )
    assert response.model_spec.version.value == served
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[3.0]]


def test_version_and_label_are_a_oneof() -> None:
    # ModelSpec.version and version_label are one proto oneof: a gRPC request can't carry
    # both (REST's "both set" error can't happen here); the last one set wins.
    request = predict_request("two_versions", [[2.0]], version=123, label="canary")
    assert request.model_spec.WhichOneof("version_choice") == "version_label"


def test_resolution_errors(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    assert_error(
        stub.Predict,
        predict_request("nope", [1.0]),
        NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )
    assert_error(
        stub.Predict,
        predict_request("two_versions", [1.0], version=7),
        NOT_FOUND,
        "Servable not found for request: Specific(two_versions, 7)",
    )
    assert_error(
        stub.Predict,
        predict_request("nope", [1.0], version=7),
        NOT_FOUND,
        "Servable not found for request: Specific(nope, 7)",
    )
    assert_error(
        stub.Predict,
        predict_request("two_versions", [1.0], label="nope"),
        INVALID,
        "Unrecognized servable version label: nope",
    )
    assert_error(
        stub.Predict,
        predict_request("half_plus_two", [1.0], label="stable"),
        INVALID,
        "Unrecognized servable version label: stable",
    )
    assert_error(  # the label is resolved before the model is looked up
        stub.Predict,
        predict_request("nope", [1.0], label="x"),
        INVALID,
        "Unrecognized servable version label: x",
    )
    assert_error(
        stub.Predict,
        predict_request("bad_half_plus_two", [1.0]),
        NOT_FOUND,
        "Servable not found for request: Latest(bad_half_plus_two)",
    )


# ---- metadata --------------------------------------------------------------------------


def metadata_request(
    name: str, *fields: str, version: int | None = None, label: str | None = None
) -> Any:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.metadata_field.extend(fields)
    return request


def signature_map_json(response: Any) -> dict[str, Any]:
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    return json_format.MessageToDict(
        signature_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def expected_map(file_name: str) -> dict[str, Any]:
    data = json.loads((TESTDATA / file_name).read_text())
    return data["metadata"]["signature_def"]  # type: ignore[no-any-return]


@needs_tfserving_testdata
@pytest.mark.parametrize(
    ("model", "file_name"),
    [
        ("tfs_half_plus_two", "half_plus_two_model_metadata.json"),
        ("tfs_two_versions", "saved_model_half_plus_two_2_versions_metadata.json"),
        # our own half_plus_two: TF Serving's signatures exactly
        ("half_plus_two", "half_plus_two_model_metadata.json"),
    ],
)
def test_metadata_matches_tf_serving(
    stub: prediction_service_pb2_grpc.PredictionServiceStub, model: str, file_name: str
) -> None:
    response = stub.GetModelMetadata(
        metadata_request(model, "signature_def", version=123), timeout=30
    )
    assert response.model_spec.name == model
    assert response.model_spec.version.value == 123
    assert signature_map_json(response) == expected_map(file_name)


@needs_tfserving_testdata
def test_metadata_tf2(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    response = stub.GetModelMetadata(
        metadata_request("half_plus_two_tf2", "signature_def"), timeout=30
    )
    actual = signature_map_json(response)
    expected = expected_map("saved_model_half_plus_two_tf2_2_versions_metadata.json")
    signatures = actual["signature_def"]
    # The fixture's __saved_model_init_op has no "defaults" key (TF Serving printed it without
    # default-valued fields there); ours prints the empty map. Compare everything else as is.
    assert signatures["__saved_model_init_op"].pop("defaults") == {}
    # The fixture comes from TF Serving's tf2 *2_versions* export; the tf2_cpu export served
    # here also declares a default value for serving_default's input x (the fixture: none).
    assert set(signatures["serving_default"]["defaults"]) == {"x"}
    signatures["serving_default"]["defaults"] = {}
    assert actual == expected


def test_metadata_latest_and_label(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    latest = stub.GetModelMetadata(metadata_request("two_versions", "signature_def"), timeout=30)
    assert latest.model_spec.version.value == 124
    stable = stub.GetModelMetadata(
        metadata_request("two_versions", "signature_def", label="stable"), timeout=30
    )
    assert stable.model_spec.version.value == 123
    assert stable.model_spec.signature_name == ""


def test_metadata_errors(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    assert_error(
        stub.GetModelMetadata,
        metadata_request("half_plus_two"),
        INVALID,
        "GetModelMetadataRequest must specify at least one metadata_field",
    )
    assert_error(
        stub.GetModelMetadata,
        metadata_request("half_plus_two", "signature_def", "x"),
        INVALID,
        "Metadata field x is not supported",
    )
    # fields are checked before the model is looked up
    assert_error(
        stub.GetModelMetadata,
        metadata_request("nope", "x"),
        INVALID,
        "Metadata field x is not supported",
    )
    assert_error(
        stub.GetModelMetadata,
        metadata_request("nope", "signature_def"),
        NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )
    assert_error(
        stub.GetModelMetadata,
        metadata_request("two_versions", "signature_def", label="nope"),
        INVALID,
        "Unrecognized servable version label: nope",
    )
    assert_error(
        stub.GetModelMetadata,
        get_model_metadata_pb2.GetModelMetadataRequest(),
        INVALID,
        "Missing ModelSpec",
    )
