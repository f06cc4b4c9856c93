"""The pipeline example: scikit-learn before and after a Keras classifier served over gRPC.

Three models trained on the wine data bundled with scikit-learn (no downloads), written as
version 1 of ``models_dir/<model>/``:

* ``wine_scaler`` -- a StandardScaler over the 13 chemical measurements (scikit-learn);
* ``wine_classifier`` -- a small Keras MLP over the scaled measurements, exported as a
  SavedModel: input ``features`` (float32, [-1, 13]) -> output ``probabilities`` of the
  three cultivars (float32, [-1, 3]);
* ``wine_segments`` -- KMeans (3 clusters) over the classifier's probabilities of the
  training wines (scikit-learn): ``predict`` gives a segment, ``transform`` the distance to
  each segment's centre.

``examples/config.yaml`` serves them as ``wine_pipeline``:
``[{model: wine_scaler, signature: transform}, {model: wine_classifier},
{model: wine_segments, signature: predict}]``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from examples.sklearn_models import publish
from examples.tf_models import staged_version_dir

logger = logging.getLogger(__name__)

SCALER, CLASSIFIER, SEGMENTS = "wine_scaler", "wine_classifier", "wine_segments"
WINE_INPUT, WINE_OUTPUT = "features", "probabilities"
WINE_FEATURES, WINE_CLASSES, WINE_SEGMENTS = 13, 3, 3
_SEED = 0


def build_wine_pipeline(models_dir: Path) -> dict[str, Path]:
    """Train and write the three models; model name -> base path."""
    import tensorflow as tf
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    data = load_wine()
    scaler = StandardScaler().fit(data.data)
    scaled = scaler.transform(data.data).astype(np.float32)
    model = _train_classifier(scaled, np.asarray(data.target))
    probabilities = np.asarray(model(scaled, training=False), dtype=np.float64)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == data.target))
    segments = KMeans(WINE_SEGMENTS, n_init=10, random_state=_SEED).fit(probabilities)
    paths = {
        SCALER: publish(scaler, models_dir / SCALER, tuple(data.feature_names)),
        SEGMENTS: publish(segments, models_dir / SEGMENTS, ("p0", "p1", "p2")),
    }
    with staged_version_dir(models_dir, CLASSIFIER, 1) as export_dir:
        _export_classifier(model, export_dir, tf)
    paths[CLASSIFIER] = models_dir / CLASSIFIER
    logger.info(
        "wrote the wine pipeline's models in %.2fs (classifier training accuracy %.3f)",
        time.perf_counter() - started,
        accuracy,
    )
    return paths


def _train_classifier(x: np.ndarray, y: np.ndarray) -> Any:
    """A 13 -> 16 -> 3 MLP, seeded, trained in one Keras epoch of many passes."""
    import keras

    keras.utils.set_random_seed(_SEED)
    inputs = keras.Input(shape=(WINE_FEATURES,), dtype="float32", name=WINE_INPUT)
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(WINE_CLASSES, activation="softmax", name=WINE_OUTPUT)(hidden)
    model = keras.Model(inputs, outputs, name="wine_mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.02),
        loss="sparse_categorical_crossentropy",
        steps_per_execution=50,
    )
    order = np.concatenate([np.random.RandomState(i).permutation(len(x)) for i in range(30)])
    model.fit(x[order], y[order], batch_size=32, epochs=1, shuffle=False, verbose=0)
    return model


def _export_classifier(model: Any, export_dir: Path, tf: Any) -> None:
    """serving_default: features -> {probabilities}."""
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=lambda features: {WINE_OUTPUT: model(features, training=False)},
        input_signature=[tf.TensorSpec([None, WINE_FEATURES], tf.float32, name=WINE_INPUT)],
    )
    archive.write_out(str(export_dir), verbose=False)
