"""clients.protos loads TF Serving's protos without running tensorflow/__init__.py.

Checked in a fresh interpreter, since this test process may have imported TensorFlow.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys

    import numpy as np

    import clients.tf_serving
    from clients import protos, tf_proto

    assert "tensorflow.python" not in sys.modules, "tensorflow/__init__.py ran"
    assert "tensorflow" not in sys.modules, "the stand-in package was left behind"
    assert protos.prediction_service_pb2_grpc.PredictionServiceStub
    assert protos.model_service_pb2_grpc.ModelServiceStub

    arrays = {
        "f": np.arange(6, dtype=np.float32).reshape(2, 3),
        "s": np.array([b"a", b"\\xff"], dtype=object),
    }
    request = protos.predict_pb2.PredictRequest()
    for name, proto in tf_proto.tensors_to_protos(arrays).items():
        request.inputs[name].CopyFrom(proto)
    again = protos.predict_pb2.PredictRequest.FromString(request.SerializeToString())
    for name, array in arrays.items():
        assert tf_proto.make_ndarray(again.inputs[name]).tolist() == array.tolist()

    import tensorflow as tf  # the real package still imports afterwards

    assert int(tf.constant(1)) == 1
    from tensorflow.core.framework import tensor_pb2

    assert tensor_pb2 is protos.tensor_pb2  # one module, one message class
    assert tf.make_ndarray(again.inputs["f"]).tolist() == arrays["f"].tolist()
    theirs = tf.make_tensor_proto(np.ones((2, 2), dtype=np.float64))
    request.inputs["t"].CopyFrom(theirs)
    assert tf_proto.make_ndarray(request.inputs["t"]).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    print("ok")
    """
)


def test_protos_load_without_tensorflow_and_tensorflow_still_imports_later() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"
