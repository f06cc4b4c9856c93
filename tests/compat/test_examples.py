"""Classify and Regress, with the results TF Serving's own tests expect."""

from __future__ import annotations

import grpc
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc, regression_pb2

from tests.compat.helpers import (
    assert_error,
    classify_request,
    example,
    regress_request,
    rpc_error,
)
from tests.conftest import needs_tfserving_testdata

# Our half_plus_two, and TF Serving's own TF2 export of it (from ../shared).
MODELS = ["half_plus_two", pytest.param("half_plus_two_tf2", marks=needs_tfserving_testdata)]
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("model", MODELS)
def test_classify(stub: prediction_service_pb2_grpc.PredictionServiceStub, model: str) -> None:
    # TF2's classify_x_to_y has method_name tensorflow/serving/predict: TF Serving accepts it
    # because tensorflow_model_server runs with the method_name check off by default.
    response = stub.Classify(classify_request(model, "classify_x_to_y", example(x=2.0)), timeout=30)
    [classifications] = response.result.classifications
    assert [(c.label, c.score) for c in classifications.classes] == [("", 3.0)]
    assert response.model_spec.name == model
    assert response.model_spec.signature_name == "classify_x_to_y"
    assert response.model_spec.version.value == 123


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("x", "y"), [(2.0, 3.0), (80.0, 42.0)])
def test_regress(
    stub: prediction_service_pb2_grpc.PredictionServiceStub, model: str, x: float, y: float
) -> None:
    response = stub.Regress(regress_request(model, "regress_x_to_y", example(x=x)), timeout=30)
    assert [r.value for r in response.result.regressions] == [y]


def test_regress_batch_with_context(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "regress_x_to_y"
    group = request.input.example_list_with_context
    group.context.CopyFrom(example(x=100.0))  # overridden by each example's x
    group.examples.extend([example(x=2.0), example(x=4.0)])
    response = stub.Regress(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [3.0, 4.0]


def test_context_supplies_missing_feature(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "regress_x_to_y"
    group = request.input.example_list_with_context
    group.context.CopyFrom(example(x=6.0))
    group.examples.append(example(other=1.0))
    assert [r.value for r in stub.Regress(request, timeout=30).result.regressions] == [5.0]


def test_unknown_signature(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    assert_error(
        stub.Classify,
        classify_request("half_plus_two", "nope", example(x=1.0)),
        INVALID,
        "No signature was found with the name: nope",
    )
    assert_error(
        stub.Regress,
        regress_request("half_plus_two", "nope", example(x=1.0)),
        INVALID,
        "No signature was found with the name: nope",
    )


def test_wrong_kind_of_signature(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    # empty signature_name = serving_default, whose input is "x", not "inputs"
    error = rpc_error(stub.Classify, classify_request("half_plus_two", "", example(x=1.0)))
    assert error.code() == INVALID
    assert error.details().startswith(
        'No classification inputs found in SignatureDef: inputs {\n  key: "x"\n'
    )
    error = rpc_error(
        stub.Regress, regress_request("half_plus_two", "classify_x_to_y", example(x=1.0))
    )
    assert error.code() == INVALID
    assert error.details().startswith("No regression outputs found in SignatureDef: ")


def test_empty_input(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    assert_error(
        stub.Classify,
        classify_request("half_plus_two", "classify_x_to_y"),
        INVALID,
        "Input is empty.",
    )
    assert_error(
        stub.Regress, regress_request("half_plus_two", "regress_x_to_y"), INVALID, "Input is empty."
    )


def test_missing_feature_is_a_tensorflow_error(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    error = rpc_error(
        stub.Regress, regress_request("half_plus_two", "regress_x_to_y", example(other=1.0))
    )
    assert error.code() == INVALID
    assert "x" in error.details()


def test_unknown_model(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    assert_error(
        stub.Classify,
        classify_request("nope", "classify_x_to_y", example(x=1.0)),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )
