"""Predict against real SavedModels, compared with TF Serving's answers and messages."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.compat.helpers import assert_error, predict_request
from tests.conftest import needs_tfserving_testdata

# Our half_plus_two, and TF Serving's own TF2 export of it (from ../shared).
MODELS = ["half_plus_two", pytest.param("half_plus_two_tf2", marks=needs_tfserving_testdata)]
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([[2.0]], [[3.0]]),  # one row
        ([[1.0], [2.0], [3.0]], [[2.5], [3.0], [3.5]]),  # a batch
        ([[1.0, 2.0], [3.0, 4.0]], [[2.5, 3.0], [3.5, 4.0]]),  # [2,2] fed to x:[-1,1] (H_test)
        ([2.0, 3.0, 4.0], [3.0, 3.5, 4.0]),  # rank 1, as TF Serving's REST test
    ],
)
def test_predict_values(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    model: str,
    x: list[object],
    y: list[object],
) -> None:
    response = stub.Predict(predict_request(model, x), timeout=30)
    assert list(response.outputs) == ["y"]
    out = response.outputs["y"]
    assert out.tensor_content  # numeric outputs are packed
    assert tf.make_ndarray(out).tolist() == y
    assert response.model_spec.name == model
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 123


def test_predict_named_signature_and_output_filter(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    request = predict_request("half_plus_two", [[1.0]], signature="serving_default")
    request.output_filter.append("y")
    response = stub.Predict(request, timeout=30)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[2.5]]


def test_predict_half_plus_three(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    response = stub.Predict(predict_request("half_plus_three", [[1.0]]), timeout=30)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[3.5]]


def test_unknown_signature(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    assert_error(
        stub.Predict,
        predict_request("half_plus_two", [1.0], signature="nope"),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    )


def test_too_many_inputs(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    request = predict_request("half_plus_two", [[1.0]])
    request.inputs["z"].CopyFrom(tf.make_tensor_proto(np.float32(1)))
    assert_error(
        stub.Predict,
        request,
        INVALID,
        "input size does not match signature: 2!=1 len({x,z}) != len({x}). "
        "Sent extra: {z}. Missing but required: {}.",
    )


def test_no_inputs(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    assert_error(
        stub.Predict,
        request,
        INVALID,
        "input size does not match signature: 0!=1 len({}) != len({x}). "
        "Sent extra: {}. Missing but required: {x}.",
    )


@needs_tfserving_testdata
def test_signature_default_fills_missing_input(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    # the TF2 export's serving_default declares x's default value [0.0] (GetInputValues)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two_tf2"
    response = stub.Predict(request, timeout=30)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [2.0]


def test_wrong_input_name(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["w"].CopyFrom(tf.make_tensor_proto(np.float32(1)))
    assert_error(
        stub.Predict,
        request,
        INVALID,
        "Signature input alias: x(feed name: x:0) not found in request and no default "
        "value provided. Inputs expected to be in the request {w}, or default input "
        "alias set: ",
    )


def test_output_filter_errors(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    request = predict_request("half_plus_two", [[1.0]])
    request.output_filter.append("nope")
    assert_error(
        stub.Predict,
        request,
        INVALID,
        "output tensor alias not found in signature: nope Outputs expected to be in the set {y}.",
    )
    request = predict_request("half_plus_two", [[1.0]])
    request.output_filter.extend(["y", "y"])
    assert_error(stub.Predict, request, INVALID, "duplicate output tensor alias: y")


def test_tensorflow_error_keeps_its_code(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1]], dtype=np.int64)))
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=30)
    assert info.value.code() == INVALID
    assert "int64" in info.value.details() and "float" in info.value.details()
    # the server is still fine afterwards
    assert stub.Predict(predict_request("half_plus_two", [[0.0]]), timeout=30).outputs["y"]


def test_unparsable_tensor(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    tensor = request.inputs["x"]
    tensor.dtype = tf.float32.as_datatype_enum
    tensor.tensor_shape.dim.add().size = 3
    tensor.tensor_content = b"\x00" * 5  # not 3 floats
    assert_error(stub.Predict, request, INVALID, "tensor parsing error: x")


def test_missing_model_spec_and_name(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    assert_error(stub.Predict, predict_pb2.PredictRequest(), INVALID, "Missing ModelSpec")
    assert_error(
        stub.Predict, predict_request("", [1.0]), INVALID, "ModelSpec has no name specified."
    )


def test_multi_inference_unimplemented(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    from tensorflow_serving.apis import inference_pb2

    with pytest.raises(grpc.RpcError) as info:
        stub.MultiInference(inference_pb2.MultiInferenceRequest(), timeout=30)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
