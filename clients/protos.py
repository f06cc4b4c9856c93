"""The one import site of TensorFlow Serving's protos and gRPC stubs, without TensorFlow.

The generated `tensorflow_serving.apis.*_pb2` modules import `tensorflow.core.*_pb2`,
and importing any `tensorflow.*` module normally runs `tensorflow/__init__.py`, which
loads all of TensorFlow (seconds and ~600 MB). The protos need none of it: the parent
directories `tensorflow/core/...` are plain packages with empty `__init__.py` files.

So, unless TensorFlow is already imported, `_without_tensorflow_init` puts a bare
stand-in for the top-level `tensorflow` package (its `__path__` the installed directory)
into `sys.modules` while the protos are imported, then removes it. The real subpackages
and pb2 modules stay loaded; a later `import tensorflow` runs the real `__init__.py` and
reuses them (same modules, same message classes). The stand-in is in place only while
this module is first imported; a concurrent first `import tensorflow` in another thread
during that window would see it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

# Keep TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) out of our logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_TENSORFLOW = "tensorflow"


@contextmanager
def _without_tensorflow_init() -> Iterator[None]:
    """Within the block, `tensorflow.*` submodules import without tensorflow/__init__.py."""
    spec = None if _TENSORFLOW in sys.modules else importlib.util.find_spec(_TENSORFLOW)
    if spec is None or spec.submodule_search_locations is None:
        yield  # already imported (or not installed: let the imports fail as usual)
        return
    stand_in = types.ModuleType(_TENSORFLOW, "Stand-in while clients.protos imports protos.")
    stand_in.__path__ = list(spec.submodule_search_locations)
    sys.modules[_TENSORFLOW] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(_TENSORFLOW) is stand_in:
            del sys.modules[_TENSORFLOW]


with _without_tensorflow_init():
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
