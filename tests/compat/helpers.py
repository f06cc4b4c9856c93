"""Request builders and assertions shared by the compat tests."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    predict_pb2,
    regression_pb2,
)


def predict_request(
    model: str, x: Any, *, version: int | None = None, label: str | None = None, signature: str = ""
) -> Any:
    """A PredictRequest feeding float32 `x` to input "x"."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(x, dtype=np.float32)))
    return request


def example(**features: float) -> tf.train.Example:
    """A tf.Example with float features."""
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                key: tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                for key, value in features.items()
            }
        )
    )


def classify_request(model: str, signature: str, *examples: tf.train.Example) -> Any:
    """A ClassificationRequest with an example_list."""
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.input.example_list.examples.extend(examples)
    return request


def regress_request(model: str, signature: str, *examples: tf.train.Example) -> Any:
    """A RegressionRequest with an example_list."""
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.input.example_list.examples.extend(examples)
    return request


def rpc_error(call: Any, request: Any) -> grpc.RpcError:
    """Calls a stub method that must fail; returns the error."""
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    return info.value


def assert_error(call: Any, request: Any, code: grpc.StatusCode, message: str) -> None:
    """The call fails with exactly this code and message."""
    error = rpc_error(call, request)
    assert (error.code(), error.details()) == (code, message)
