"""The one import site of TensorFlow Serving's protos and gRPC stubs.

Importing `tensorflow_serving.apis` loads all of TensorFlow (seconds and hundreds of
MB), so only the TensorFlow client modules import this one, and only when a
TensorFlow model is configured.
"""

from __future__ import annotations

import os

# Keep TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) out of our logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

__all__ = [
    "classification_pb2",
    "example_pb2",
    "feature_pb2",
    "get_model_metadata_pb2",
    "get_model_status_pb2",
    "input_pb2",
    "meta_graph_pb2",
    "model_pb2",
    "model_service_pb2_grpc",
    "predict_pb2",
    "prediction_service_pb2_grpc",
    "regression_pb2",
    "tensor_pb2",
    "tensor_shape_pb2",
]
