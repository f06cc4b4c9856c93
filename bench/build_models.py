"""Build the benchmark's models: iris (the project's save_model), half_plus_two, an image model.

Run in a child process by the harness (it imports TensorFlow): ``python3 -m bench.build_models
MODELS_DIR``. Existing models are kept. The image model is a tiny Keras model (global average
pooling + Dense(10)) whose ``serving_default`` takes ``image`` DT_FLOAT [-1, 224, 224, 3].
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

IMAGE_MODEL = "image"
IMAGE_SHAPE = (224, 224, 3)


def build_image_model(models_dir: Path) -> Path:
    """Export the image model as ``models_dir/image/1``; return the base path."""
    import keras
    import tensorflow as tf
    from keras.export import ExportArchive

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=IMAGE_SHAPE, dtype="float32", name="image")
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(10, activation="softmax", name="scores")(pooled)
    model = keras.Model(inputs, outputs)

    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": model(image, training=False)}

    archive = ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([None, *IMAGE_SHAPE], tf.float32, name="image")
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=[spec])
    base = models_dir / IMAGE_MODEL
    staging = base / ".staging-1"
    shutil.rmtree(staging, ignore_errors=True)
    archive.write_out(str(staging), verbose=False)
    staging.rename(base / "1")
    return base


def build_all(models_dir: Path) -> None:
    """Build whichever of iris, half_plus_two and image is missing under `models_dir`."""
    from examples.sklearn_models import build_iris
    from examples.tf_models import build_half_plus_two

    models_dir.mkdir(parents=True, exist_ok=True)
    if not (models_dir / "iris" / "1").is_dir():
        build_iris(models_dir)
    if not (models_dir / "half_plus_two" / "1").is_dir():
        build_half_plus_two(models_dir)
    if not (models_dir / IMAGE_MODEL / "1").is_dir():
        build_image_model(models_dir)


if __name__ == "__main__":
    build_all(Path(sys.argv[1]))
