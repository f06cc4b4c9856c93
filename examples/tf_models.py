"""Example TensorFlow models, built from code and exported in TF Serving's layout.

Each builder writes ``models_dir/<model>/<version>/`` (``saved_model.pb`` + ``variables/``)
so the directory ``models_dir/<model>`` can be used directly as a TF Serving model base path.
Exports are staged in a hidden temp dir next to the target and then renamed into place, so a
server polling the base path never sees a half-written version.

Models:

* ``half_plus_two`` -- a TF1-style graph computing ``y = 0.5 * x + 2``, shaped like TF Serving's
  own test model ``saved_model_half_plus_two`` (same signature names, aliases, tensor names,
  dtypes, shapes and method names):

  - ``serving_default`` (``tensorflow/serving/predict``): ``x`` -> ``y`` (``x:0`` -> ``y:0``,
    DT_FLOAT [-1, 1]).
  - ``classify_x_to_y`` (``tensorflow/serving/classify``): ``inputs`` (``tf_example:0``,
    DT_STRING, unknown rank: serialized ``tf.Example`` with float feature ``x``) -> ``scores``
    (``y:0``, DT_FLOAT [-1, 1]).
  - ``regress_x_to_y`` (``tensorflow/serving/regress``): ``inputs`` (``tf_example:0``) ->
    ``outputs`` (``y:0``).
  - ``regress_x_to_y2`` (regress): ``inputs`` (``tf_example:0``) -> ``outputs`` (``y2:0`` =
    0.5 * x + 3).
  - ``regress_x2_to_y3`` (regress): ``inputs`` (``x2:0``, DT_FLOAT [-1, 1]; parsed from the
    optional feature ``x2``, default 0) -> ``outputs`` (``y3:0`` = 0.5 * x2 + 3).

* ``digits`` -- a small Keras MLP trained on scikit-learn's bundled ``load_digits`` (8x8 images,
  pixel values 0..16, 10 classes), exported as a TF2 SavedModel with one signature:

  - ``serving_default`` (``tensorflow/serving/predict``): input ``pixels`` (DT_FLOAT [-1, 64],
    raw ``load_digits`` pixel values 0..16) -> outputs ``probabilities`` (DT_FLOAT [-1, 10],
    softmax) and ``classes`` (DT_INT64 [-1], argmax).

Both load with ``tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)`` and run with
``sess._make_callable_from_options(...)``, the way TF Serving's C++ ``Session::Run`` does.

Usage: ``python -m examples.tf_models MODELS_DIR [--version N]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray
from tensorflow.core.protobuf import meta_graph_pb2

logger = logging.getLogger(__name__)

HALF_PLUS_TWO = "half_plus_two"
DIGITS = "digits"

DIGITS_INPUT = "pixels"
DIGITS_NUM_FEATURES = 64
DIGITS_NUM_CLASSES = 10
DIGITS_MAX_PIXEL = 16.0
DIGITS_SEED = 0
DIGITS_TEST_FRACTION = 0.25

_ASSET_NAME = "foo.txt"
_ASSET_CONTENTS = "asset-file-contents"

_v1 = tf.compat.v1
_sig = _v1.saved_model.signature_constants


# --------------------------------------------------------------------------- atomic writes


@contextmanager
def staged_version_dir(models_dir: Path, model_name: str, version: int) -> Iterator[Path]:
    """Yield a not-yet-existing staging path; on success move it to ``<model>/<version>``."""
    if version < 0:
        raise ValueError(f"version must be >= 0, got {version}")
    base = Path(models_dir) / model_name
    base.mkdir(parents=True, exist_ok=True)
    staging_root = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base))
    try:
        yield staging_root / "export"
        _replace_dir(staging_root / "export", base / str(version))
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, replacing an existing ``dst`` directory."""
    if dst.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".old-{dst.name}-", dir=dst.parent))
        dst.rename(trash / dst.name)
        src.rename(dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        src.rename(dst)


def _log_written(name: str, path: Path, started: float) -> None:
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    logger.info(
        "wrote %s SavedModel to %s in %.2fs (%s)",
        name,
        path,
        time.perf_counter() - started,
        ", ".join(files),
    )


# --------------------------------------------------------------------------- half_plus_two


@dataclass(frozen=True)
class _HalfPlusTwoTensors:
    serialized: Any
    x: Any
    x2: Any
    y: Any
    y2: Any
    y3: Any


def _tensor_info(tensor: Any) -> Any:
    """TensorInfo proto (name, dtype, static shape) of a graph tensor."""
    return meta_graph_pb2.TensorInfo(
        name=tensor.name,
        dtype=tensor.dtype.as_datatype_enum,
        tensor_shape=tensor.shape.as_proto(),
    )


def _tensor_signature(inputs: dict[str, Any], outputs: dict[str, Any], method: str) -> Any:
    """Build a SignatureDef proto from alias -> tensor maps."""
    signature = meta_graph_pb2.SignatureDef(method_name=method)
    for alias, tensor in inputs.items():
        signature.inputs[alias].CopyFrom(_tensor_info(tensor))
    for alias, tensor in outputs.items():
        signature.outputs[alias].CopyFrom(_tensor_info(tensor))
    return signature


def _half_plus_two_graph(plus: float) -> _HalfPlusTwoTensors:
    """Create the half_plus_two ops (y = 0.5 * x + plus) in the current default graph."""
    a = _v1.Variable(0.5, name="a")
    b = _v1.Variable(plus, name="b")
    c = _v1.Variable(3.0, name="c")
    # Unknown rank like TF Serving's export; reshaped to a batch vector before parsing.
    serialized = _v1.placeholder(tf.string, name="tf_example")
    features = {
        "x": _v1.io.FixedLenFeature([1], tf.float32),
        "x2": _v1.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
    }
    parsed = _v1.io.parse_example(_v1.reshape(serialized, [-1]), features)
    x = tf.identity(parsed["x"], name="x")
    y = tf.identity(a * x + b, name="y")
    y2 = tf.identity(a * x + c, name="y2")
    x2 = tf.identity(parsed["x2"], name="x2")
    # Separate variables for the x2 path, as in TF Serving's model.
    a2 = _v1.Variable(0.5, name="a2")
    c2 = _v1.Variable(3.0, name="c2")
    y3 = tf.identity(a2 * x2 + c2, name="y3")
    return _HalfPlusTwoTensors(serialized, x, x2, y, y2, y3)


def _half_plus_two_signatures(t: _HalfPlusTwoTensors) -> dict[str, Any]:
    """The five SignatureDefs of TF Serving's saved_model_half_plus_two."""
    regress_in, regress_out = _sig.REGRESS_INPUTS, _sig.REGRESS_OUTPUTS
    return {
        _sig.DEFAULT_SERVING_SIGNATURE_DEF_KEY: _tensor_signature(
            {"x": t.x}, {"y": t.y}, _sig.PREDICT_METHOD_NAME
        ),
        "classify_x_to_y": _tensor_signature(
            {_sig.CLASSIFY_INPUTS: t.serialized},
            {_sig.CLASSIFY_OUTPUT_SCORES: t.y},
            _sig.CLASSIFY_METHOD_NAME,
        ),
        "regress_x_to_y": _tensor_signature(
            {regress_in: t.serialized}, {regress_out: t.y}, _sig.REGRESS_METHOD_NAME
        ),
        "regress_x_to_y2": _tensor_signature(
            {regress_in: t.serialized}, {regress_out: t.y2}, _sig.REGRESS_METHOD_NAME
        ),
        "regress_x2_to_y3": _tensor_signature(
            {regress_in: t.x2}, {regress_out: t.y3}, _sig.REGRESS_METHOD_NAME
        ),
    }


def _asset_main_op(asset_dir: Path) -> tuple[Any, Any]:
    """Register an asset file (like TF Serving's foo.txt); return (assets, main op)."""
    asset_dir.mkdir(parents=True, exist_ok=True)
    asset_path = asset_dir / _ASSET_NAME
    asset_path.write_text(_ASSET_CONTENTS)
    asset_tensor = tf.constant(str(asset_path))
    _v1.add_to_collection(_v1.GraphKeys.ASSET_FILEPATHS, asset_tensor)
    filename = _v1.Variable(_ASSET_NAME, name="filename_tensor", trainable=False, collections=[])
    main_op = tf.group(filename.assign(_ASSET_NAME))
    return _v1.get_collection(_v1.GraphKeys.ASSET_FILEPATHS), main_op


def _export_half_plus_two(export_dir: Path, asset_dir: Path, plus: float) -> None:
    """Write the half_plus_two SavedModel to ``export_dir`` (which must not exist)."""
    builder = _v1.saved_model.builder.SavedModelBuilder(str(export_dir))
    with tf.Graph().as_default() as graph, _v1.Session(graph=graph) as sess:
        tensors = _half_plus_two_graph(plus)
        assets, main_op = _asset_main_op(asset_dir)
        sess.run(_v1.global_variables_initializer())
        builder.add_meta_graph_and_variables(
            sess,
            [_v1.saved_model.tag_constants.SERVING],
            signature_def_map=_half_plus_two_signatures(tensors),
            assets_collection=assets,
            main_op=main_op,
            clear_devices=True,
        )
    builder.save()


def build_half_plus_two(
    models_dir: Path, version: int = 1, *, name: str = HALF_PLUS_TWO, plus: float = 2.0
) -> Path:
    """Export y = 0.5*x + 2 (TF Serving's half_plus_two) to ``models_dir/<name>/<version>``.

    ``plus`` replaces the 2 (``plus=3``: like TF Serving's half_plus_three); the tests build
    their stand-ins for TF Serving's test models this way. Returns the version directory.
    """
    started = time.perf_counter()
    target = Path(models_dir) / name / str(version)
    with staged_version_dir(models_dir, name, version) as export_dir:
        _export_half_plus_two(export_dir, export_dir.parent / "asset_src", plus)
    _log_written(name, target, started)
    return target


# --------------------------------------------------------------------------- digits


@dataclass(frozen=True)
class DigitsData:
    """Deterministic train/test split of scikit-learn's bundled digits data set."""

    x_train: NDArray[np.float32]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.float32]
    y_test: NDArray[np.int64]


def load_digits_split(seed: int = DIGITS_SEED) -> DigitsData:
    """Load ``sklearn.datasets.load_digits`` (no download) and split it 75/25, stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, random_state=seed, stratify=y
    )
    return DigitsData(x_tr, y_tr, x_te, y_te)


def _digits_model(seed: int) -> Any:
    """A small MLP on raw 0..16 pixels (scaling is part of the model)."""
    import keras

    def dense(units: int, activation: str, name: str, offset: int) -> Any:
        init = keras.initializers.GlorotUniform(seed=seed + offset)
        return keras.layers.Dense(units, activation=activation, kernel_initializer=init, name=name)

    inputs = keras.Input(shape=(DIGITS_NUM_FEATURES,), dtype="float32", name=DIGITS_INPUT)
    h = keras.layers.Rescaling(1.0 / DIGITS_MAX_PIXEL, name="scale")(inputs)
    h = dense(64, "relu", "hidden", 0)(h)
    outputs = dense(DIGITS_NUM_CLASSES, "softmax", "probabilities", 1)(h)
    return keras.Model(inputs, outputs, name="digits_mlp")


def train_digits_model(data: DigitsData, seed: int = DIGITS_SEED, passes: int = 20) -> Any:
    """Train the digits MLP deterministically (seeded init, fixed sample order, no shuffle).

    The ``passes`` seeded permutations of the training set are concatenated and fed as a single
    Keras epoch with many steps per execution: Keras' per-epoch overhead dominates otherwise.
    """
    import keras

    model = _digits_model(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.01),
        loss="sparse_categorical_crossentropy",
        jit_compile=False,
        steps_per_execution=100,
    )
    rng = np.random.RandomState(seed)
    order = np.concatenate([rng.permutation(len(data.x_train)) for _ in range(passes)])
    model.fit(
        data.x_train[order],
        data.y_train[order],
        batch_size=64,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    return model


def _digits_serving_fn(model: Any) -> Callable[[Any], dict[str, Any]]:
    """The serving_default function: pixels -> {probabilities, classes}."""

    def serve(pixels: Any) -> dict[str, Any]:
        probabilities = model(pixels, training=False)
        classes = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {"probabilities": probabilities, "classes": classes}

    return serve


def export_digits_model(model: Any, export_dir: Path) -> None:
    """Export ``model`` as a TF2 SavedModel with the documented serving_default signature."""
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([None, DIGITS_NUM_FEATURES], tf.float32, name=DIGITS_INPUT)
    archive.add_endpoint(
        name=_sig.DEFAULT_SERVING_SIGNATURE_DEF_KEY,
        fn=_digits_serving_fn(model),
        input_signature=[spec],
    )
    archive.write_out(str(export_dir), verbose=False)


def evaluate_digits_accuracy(model: Any, data: DigitsData) -> float:
    """Accuracy of ``model`` on the held-out split."""
    probabilities = np.asarray(model.predict(data.x_test, verbose=0))
    return float(np.mean(np.argmax(probabilities, axis=-1) == data.y_test))


def build_digits_classifier(models_dir: Path, version: int = 1) -> Path:
    """Train the digits MLP and export it to ``models_dir/digits/<version>``.

    Returns the version directory.
    """
    started = time.perf_counter()
    data = load_digits_split()
    model = train_digits_model(data)
    logger.info("digits test accuracy: %.4f", evaluate_digits_accuracy(model, data))
    target = Path(models_dir) / DIGITS / str(version)
    with staged_version_dir(models_dir, DIGITS, version) as export_dir:
        export_digits_model(model, export_dir)
    _log_written(DIGITS, target, started)
    return target


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> None:
    """Build both example models into MODELS_DIR."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("models_dir", type=Path)
    parser.add_argument("--version", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorflow").propagate = False  # TF logs through its own handler.
    build_half_plus_two(args.models_dir, args.version)
    build_digits_classifier(args.models_dir, args.version)


if __name__ == "__main__":
    main()
