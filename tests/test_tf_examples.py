"""Tests for examples/tf_models.py: build the example SavedModels and run them like TF Serving.

Each export is loaded with ``tf.compat.v1.saved_model.loader.load`` into its own Graph+Session
and its signatures are run through ``sess._make_callable_from_options`` with the signature's
tensor names, which is how the project's TF-Serving-compatible server runs them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf
from numpy.typing import NDArray
from tensorflow.core.protobuf import config_pb2

from examples.tf_models import (
    DIGITS_INPUT,
    build_digits_classifier,
    build_half_plus_two,
    load_digits_split,
    train_digits_model,
)
from tests.conftest import TFSERVING_TESTDATA, needs_tfserving_testdata

TFSERVING_HALF_PLUS_TWO = TFSERVING_TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"
TFSERVING_METADATA = TFSERVING_TESTDATA / "half_plus_two_model_metadata.json"
HALF_PLUS_TWO_SIGNATURES = {
    "serving_default",
    "classify_x_to_y",
    "regress_x_to_y",
    "regress_x_to_y2",
    "regress_x2_to_y3",
}
MIN_DIGITS_ACCURACY = 0.93


@dataclass
class LoadedModel:
    """A SavedModel version loaded the way TF Serving loads it."""

    graph: Any
    session: Any
    meta_graph: Any

    def run(self, signature: str, feeds: Mapping[str, Any], fetches: Sequence[str]) -> list[Any]:
        """Run ``signature`` (input alias -> value) and return the requested output aliases."""
        sig = self.meta_graph.signature_def[signature]
        aliases = list(feeds)
        options = config_pb2.CallableOptions(
            feed=[sig.inputs[a].name for a in aliases],
            fetch=[sig.outputs[a].name for a in fetches],
        )
        fn = self.session._make_callable_from_options(options)
        return list(fn(*(feeds[a] for a in aliases)))


def load_saved_model(path: Path) -> LoadedModel:
    """Load ``path`` with the TF1 session loader into a fresh Graph + Session."""
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
    return LoadedModel(graph, session, meta_graph)


def serialized_examples(**features: list[float]) -> NDArray[np.object_]:
    """One serialized ``tf.train.Example`` per position of the given float feature lists."""
    n = len(next(iter(features.values())))
    out = []
    for i in range(n):
        feature = {
            k: tf.train.Feature(float_list=tf.train.FloatList(value=[v[i]]))
            for k, v in features.items()
        }
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        out.append(example.SerializeToString())
    return np.array(out, dtype=object)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build both example models once per test session."""
    root = tmp_path_factory.mktemp("tf_models")
    build_half_plus_two(root)
    build_digits_classifier(root)
    return root


@pytest.fixture(scope="session")
def half_plus_two(models_dir: Path) -> Iterator[LoadedModel]:
    """half_plus_two version 1, loaded."""
    model = load_saved_model(models_dir / "half_plus_two" / "1")
    yield model
    model.session.close()


@pytest.fixture(scope="session")
def digits(models_dir: Path) -> Iterator[LoadedModel]:
    """digits version 1, loaded."""
    model = load_saved_model(models_dir / "digits" / "1")
    yield model
    model.session.close()


def _signature_summary(sig: Any) -> dict[str, Any]:
    """Method name plus alias -> (dtype, shape or None for unknown rank) of a SignatureDef."""

    def infos(m: Any) -> dict[str, tuple[str, list[int] | None]]:
        return {
            alias: (
                tf.dtypes.as_dtype(info.dtype).name,
                None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim],
            )
            for alias, info in m.items()
        }

    return {"method": sig.method_name, "inputs": infos(sig.inputs), "outputs": infos(sig.outputs)}


# --------------------------------------------------------------------------- half_plus_two


def test_half_plus_two_layout(models_dir: Path) -> None:
    base = models_dir / "half_plus_two"
    assert sorted(p.name for p in base.iterdir()) == ["1"]
    assert (base / "1" / "saved_model.pb").is_file()
    assert (base / "1" / "variables" / "variables.index").is_file()
    assert (base / "1" / "assets" / "foo.txt").read_text() == "asset-file-contents"


def test_half_plus_two_signatures(half_plus_two: LoadedModel) -> None:
    sigs = half_plus_two.meta_graph.signature_def
    assert set(sigs) == HALF_PLUS_TWO_SIGNATURES
    assert _signature_summary(sigs["serving_default"]) == {
        "method": "tensorflow/serving/predict",
        "inputs": {"x": ("float32", [-1, 1])},
        "outputs": {"y": ("float32", [-1, 1])},
    }
    assert _signature_summary(sigs["classify_x_to_y"]) == {
        "method": "tensorflow/serving/classify",
        "inputs": {"inputs": ("string", None)},
        "outputs": {"scores": ("float32", [-1, 1])},
    }
    assert _signature_summary(sigs["regress_x_to_y"]) == {
        "method": "tensorflow/serving/regress",
        "inputs": {"inputs": ("string", None)},
        "outputs": {"outputs": ("float32", [-1, 1])},
    }
    assert sigs["serving_default"].inputs["x"].name == "x:0"
    assert sigs["serving_default"].outputs["y"].name == "y:0"
    assert sigs["classify_x_to_y"].inputs["inputs"].name == "tf_example:0"


def test_half_plus_two_predict_batch(half_plus_two: LoadedModel) -> None:
    x = np.array([[1.0], [2.0], [5.0]], dtype=np.float32)
    (y,) = half_plus_two.run("serving_default", {"x": x}, ["y"])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.array([[2.5], [3.0], [4.5]], dtype=np.float32))


def test_half_plus_two_predict_vector(half_plus_two: LoadedModel) -> None:
    x = np.array([1.0, 2.0, 5.0], dtype=np.float32)
    (y,) = half_plus_two.run("serving_default", {"x": x}, ["y"])
    np.testing.assert_array_equal(y, np.array([2.5, 3.0, 4.5], dtype=np.float32))


def test_half_plus_two_classify(half_plus_two: LoadedModel) -> None:
    (scores,) = half_plus_two.run(
        "classify_x_to_y", {"inputs": serialized_examples(x=[2.0])}, ["scores"]
    )
    np.testing.assert_array_equal(scores, np.array([[3.0]], dtype=np.float32))


def test_half_plus_two_regress(half_plus_two: LoadedModel) -> None:
    examples = serialized_examples(x=[2.0, 4.0])
    (y,) = half_plus_two.run("regress_x_to_y", {"inputs": examples}, ["outputs"])
    np.testing.assert_array_equal(y, np.array([[3.0], [4.0]], dtype=np.float32))
    (y2,) = half_plus_two.run("regress_x_to_y2", {"inputs": examples}, ["outputs"])
    np.testing.assert_array_equal(y2, np.array([[4.0], [5.0]], dtype=np.float32))


def test_half_plus_two_regress_x2_to_y3(half_plus_two: LoadedModel) -> None:
    x2 = np.array([[2.0], [4.0]], dtype=np.float32)
    (y3,) = half_plus_two.run("regress_x2_to_y3", {"inputs": x2}, ["outputs"])
    np.testing.assert_array_equal(y3, np.array([[4.0], [5.0]], dtype=np.float32))


@needs_tfserving_testdata
def test_half_plus_two_matches_tfserving_export(half_plus_two: LoadedModel) -> None:
    reference = load_saved_model(TFSERVING_HALF_PLUS_TWO)
    try:
        ours = half_plus_two.meta_graph.signature_def
        theirs = reference.meta_graph.signature_def
        assert set(ours) == set(theirs)
        for name in theirs:
            # Full proto equality: aliases, tensor names, dtypes, shapes and method names.
            assert ours[name] == theirs[name], name
        x = np.array([[1.0], [2.0], [5.0]], dtype=np.float32)
        np.testing.assert_array_equal(
            half_plus_two.run("serving_default", {"x": x}, ["y"])[0],
            reference.run("serving_default", {"x": x}, ["y"])[0],
        )
    finally:
        reference.session.close()


@needs_tfserving_testdata
def test_half_plus_two_matches_tfserving_metadata(half_plus_two: LoadedModel) -> None:
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    metadata = json.loads(TFSERVING_METADATA.read_text())
    theirs = json_format.ParseDict(
        metadata["metadata"]["signature_def"], get_model_metadata_pb2.SignatureDefMap()
    ).signature_def
    ours = half_plus_two.meta_graph.signature_def
    assert {k: _signature_summary(v) for k, v in ours.items()} == {
        k: _signature_summary(v) for k, v in theirs.items()
    }


def test_half_plus_two_rebuild_replaces_version(tmp_path: Path) -> None:
    first = build_half_plus_two(tmp_path, version=3)
    stray = first / "stray.txt"
    stray.write_text("left over")
    second = build_half_plus_two(tmp_path, version=3)
    assert second == first == tmp_path / "half_plus_two" / "3"
    assert not stray.exists()
    assert sorted(p.name for p in (tmp_path / "half_plus_two").iterdir()) == ["3"]
    model = load_saved_model(second)
    try:
        (y,) = model.run("serving_default", {"x": np.array([[4.0]], np.float32)}, ["y"])
        np.testing.assert_array_equal(y, [[4.0]])
    finally:
        model.session.close()


# --------------------------------------------------------------------------- digits


def test_digits_layout(models_dir: Path) -> None:
    base = models_dir / "digits"
    assert sorted(p.name for p in base.iterdir()) == ["1"]
    assert (base / "1" / "saved_model.pb").is_file()
    assert (base / "1" / "variables" / "variables.index").is_file()


def test_digits_signature(digits: LoadedModel) -> None:
    sigs = digits.meta_graph.signature_def
    assert "serving_default" in sigs
    assert _signature_summary(sigs["serving_default"]) == {
        "method": "tensorflow/serving/predict",
        "inputs": {DIGITS_INPUT: ("float32", [-1, 64])},
        "outputs": {"probabilities": ("float32", [-1, 10]), "classes": ("int64", [-1])},
    }


def test_digits_accuracy_and_probabilities(digits: LoadedModel) -> None:
    data = load_digits_split()
    probabilities, classes = digits.run(
        "serving_default", {DIGITS_INPUT: data.x_test}, ["probabilities", "classes"]
    )
    assert probabilities.shape == (len(data.x_test), 10)
    assert probabilities.dtype == np.float32
    assert classes.dtype == np.int64
    assert classes.shape == (len(data.x_test),)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(classes, probabilities.argmax(axis=1))
    accuracy = float(np.mean(classes == data.y_test))
    assert accuracy > MIN_DIGITS_ACCURACY, accuracy


def test_digits_single_row(digits: LoadedModel) -> None:
    data = load_digits_split()
    (classes,) = digits.run("serving_default", {DIGITS_INPUT: data.x_test[:1]}, ["classes"])
    assert classes.shape == (1,)


def test_digits_training_is_deterministic() -> None:
    data = load_digits_split()
    first = train_digits_model(data, passes=2).get_weights()
    second = train_digits_model(data, passes=2).get_weights()
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
