"""The scikit-learn backend with real estimators, trained in temporary directories."""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import sklearn.base
from sklearn.datasets import load_diabetes, load_iris
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC

from clients.sklearn_artifacts import is_trusted_type
from clients.sklearn_backend import SklearnBackend, save_model, scan_versions, select_versions
from clients.sklearn_errors import scrub_message
from clients.types import (
    Code,
    DType,
    ExampleBatch,
    Feature,
    ModelSource,
    ModelSpec,
    ModelState,
    ServingError,
    VersionPolicy,
)
from examples.sklearn_models import IRIS_FEATURES, build_diabetes_regressor, build_iris
from tests.conftest import StartSklearn

IRIS_X, IRIS_Y = load_iris(return_X_y=True)
DIABETES_X, DIABETES_Y = load_diabetes(return_X_y=True)
ROWS = IRIS_X[[0, 60, 120]]
TEXTS = ["good great day", "bad awful day", "great fine cat", "awful bad dog"]


@functools.cache
def iris_model(c: float = 1.0) -> LogisticRegression:
    """A deterministic iris classifier; `c` tells versions apart."""
    return LogisticRegression(C=c, max_iter=1000).fit(IRIS_X, IRIS_Y)


def named_example(row: Sequence[float]) -> dict[str, Feature]:
    """An iris row as one float feature per feature name."""
    return {name: Feature("float", (float(v),)) for name, v in zip(IRIS_FEATURES, row, strict=True)}


def batch(*examples: dict[str, Feature], context: dict[str, Feature] | None = None) -> ExampleBatch:
    """An ExampleBatch of `examples`."""
    return ExampleBatch(tuple(examples), context)


async def expect_error(code: Code, call: Any, *fragments: str) -> str:
    """Await `call`, assert it raises ServingError(code) whose message holds every fragment."""
    with pytest.raises(ServingError) as info:
        await call
    assert info.value.code == code, info.value
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    return info.value.message


# The gate of the slow estimator: rows whose first value is SLOW wait for `_RELEASE`.
SLOW = 99.0
_ENTERED = threading.Event()
_RELEASE = threading.Event()


def gated_identity(x: np.ndarray) -> np.ndarray:
    """Identity; waits for the test to release it when the first value is SLOW."""
    if len(x) and x[0, 0] == SLOW:
        _ENTERED.set()
        _RELEASE.wait(10)
    return x


@pytest.fixture(scope="module")
def example_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example models iris and diabetes, built once."""
    built = tmp_path_factory.mktemp("examples")
    build_iris(built)
    build_diabetes_regressor(built)
    return built


@pytest.fixture
def models_dir(tmp_path: Path, example_models: Path) -> Path:
    """A base directory holding one subdirectory per model, starting with iris and diabetes."""
    shutil.copytree(example_models, tmp_path, dirs_exist_ok=True)
    return tmp_path


Start = Callable[..., Awaitable[SklearnBackend]]


@pytest.fixture
def start(models_dir: Path, start_sklearn: StartSklearn) -> Start:
    """`await start(ModelSource(...) | name, ...)`: a started backend, closed after the test."""

    async def _start(*models: ModelSource | str, **kwargs: Any) -> SklearnBackend:
        sources = [m if isinstance(m, ModelSource) else source(models_dir, m) for m in models]
        return await start_sklearn(*sources, **kwargs)

    return _start


def source(models_dir: Path, name: str, **kwargs: Any) -> ModelSource:
    """A ModelSource for `models_dir/name`."""
    return ModelSource(name, str(models_dir / name), **kwargs)


# ---------------------------------------------------------------------------- predict


async def test_predict_signatures_match_the_estimator(start: Start, models_dir: Path) -> None:
    backend = await start("iris")
    est = iris_model()
    for signature, expected in [
        ("", est.predict(ROWS)),
        ("serving_default", est.predict(ROWS)),
        ("predict", est.predict(ROWS)),
        ("predict_proba", est.predict_proba(ROWS)),
        ("predict_log_proba", est.predict_log_proba(ROWS)),
        ("decision_function", est.decision_function(ROWS)),
    ]:
        spec = ModelSpec("iris", 1, signature_name=signature)
        out = await backend.predict(spec, {"inputs": ROWS})
        assert list(out) == ["outputs"]
        np.testing.assert_allclose(out["outputs"], expected)
    labels = (await backend.predict(ModelSpec("iris", 1), {"inputs": ROWS}))["outputs"]
    assert labels.dtype == np.int64
    assert labels.tolist() == [0, 1, 2]


async def test_transform_and_score_samples_signatures(start: Start, models_dir: Path) -> None:
    pca = PCA(2).fit(IRIS_X)
    save_model(pca, models_dir / "pca" / "1")
    backend = await start("pca")
    meta = await backend.metadata(ModelSpec("pca"))
    assert set(meta.signatures) == {"serving_default", "transform", "score_samples"}
    assert meta.signatures["serving_default"].outputs["outputs"].name == "transform:0"
    out = await backend.predict(ModelSpec("pca", 1), {"inputs": ROWS})
    np.testing.assert_allclose(out["outputs"], pca.transform(ROWS))
    spec = ModelSpec("pca", 1, signature_name="score_samples")
    scores = await backend.predict(spec, {"inputs": ROWS})
    np.testing.assert_allclose(scores["outputs"], pca.score_samples(ROWS))


async def test_string_classes_and_text_input(start: Start, models_dir: Path) -> None:
    text = make_pipeline(TfidfVectorizer(), LogisticRegression())
    text.fit(TEXTS, ["pos", "neg", "pos", "neg"])
    save_model(text, models_dir / "text" / "1")
    backend = await start("text")
    sig = (await backend.metadata(ModelSpec("text"))).signatures["serving_default"]
    assert (sig.inputs["inputs"].dtype, sig.inputs["inputs"].shape) == (DType.DT_STRING, (-1,))
    assert (sig.outputs["outputs"].dtype, sig.outputs["outputs"].shape) == (DType.DT_STRING, (-1,))
    queries = np.array([b"great day", b"awful dog"], dtype=object)
    out = (await backend.predict(ModelSpec("text", 1), {"inputs": queries}))["outputs"]
    assert out.dtype == object
    assert out.tolist() == [b"pos", b"neg"]
    results = await backend.classify(
        ModelSpec("text", 1), batch({"inputs": Feature("bytes", (b"great day",))})
    )
    expected = text.predict_proba(["great day"])[0]
    assert results[0].classes == tuple(zip(["neg", "pos"], expected, strict=True))


async def test_metadata_shapes_names_and_extra(start: Start) -> None:
    backend = await start("iris")
    meta = await backend.metadata(ModelSpec("iris"))
    assert (meta.name, meta.version) == ("iris", 1)
    assert set(meta.signatures) == {
        "serving_default",
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
    }
    proba = meta.signatures["predict_proba"]
    assert proba.method_name == "tensorflow/serving/predict"
    assert proba.inputs["inputs"].shape == (-1, 4)
    assert proba.inputs["inputs"].dtype == DType.DT_DOUBLE
    assert proba.outputs["outputs"].shape == (-1, 3)
    assert proba.outputs["outputs"].name == "predict_proba:0"
    assert meta.signatures["predict"].outputs["outputs"].dtype == DType.DT_INT64
    info: Any = meta.extra["sklearn"]
    assert info["estimator"] == "LogisticRegression"
    assert info["format"] == "skops"
    assert info["version_mismatch"] is False
    assert info["saved_with"] == info["running"]
    assert info["feature_names"] == list(IRIS_FEATURES)
    assert info["classify_scores"] == "predict_proba"


async def test_empty_batch_gives_empty_output(start: Start) -> None:
    backend = await start("iris")
    spec = ModelSpec("iris", 1, signature_name="predict_proba")
    out = await backend.predict(spec, {"inputs": np.zeros((0, 4))})
    assert out["outputs"].shape == (0, 3)


async def test_predict_errors(start: Start) -> None:
    backend = await start("iris")
    spec = ModelSpec("iris", 1)
    message = await expect_error(
        Code.INVALID_ARGUMENT,
        backend.predict(ModelSpec("iris", 1, signature_name="nope"), {"inputs": ROWS}),
        'Serving signature name: "nope" not found in signature def',
        "predict_proba",
    )
    assert "serving_default" in message
    await expect_error(
        Code.INVALID_ARGUMENT, backend.predict(spec, {"x": ROWS}), "Sent extra: {x}", "{inputs}"
    )
    await expect_error(
        Code.INVALID_ARGUMENT,
        backend.predict(spec, {"inputs": ROWS, "more": ROWS}),
        "Sent extra: {more}",
    )
    await expect_error(
        Code.INVALID_ARGUMENT,
        backend.predict(spec, {"inputs": ROWS[0]}),
        "expected shape [-1,4] (rows of 4 features), got [4]",
    )
    await expect_error(
        Code.INVALID_ARGUMENT,
        backend.predict(spec, {"inputs": ROWS[:, :3]}),
        "expected shape [-1,4] (rows of 4 features), got [3,3]",
    )
    strings = np.array([[b"a"] * 4], dtype=object)
    await expect_error(
        Code.INVALID_ARGUMENT, backend.predict(spec, {"inputs": strings}), "DT_DOUBLE"
    )
    nan_rows = ROWS.copy()
    nan_rows[1, 2] = np.nan
    await expect_error(Code.INVALID_ARGUMENT, backend.predict(spec, {"inputs": nan_rows}), "NaN")
    inf_rows = ROWS.copy()
    inf_rows[0, 0] = np.inf
    await expect_error(Code.INVALID_ARGUMENT, backend.predict(spec, {"inputs": inf_rows}), "inf")


async def test_unknown_model_version_and_label(start: Start, models_dir: Path) -> None:
    backend = await start(source(models_dir, "iris", version_labels={"stable": 1, "gone": 7}))
    inputs = {"inputs": ROWS}
    for call in (
        backend.metadata(ModelSpec("nope")),
        backend.predict(ModelSpec("nope"), inputs),
        backend.classify(ModelSpec("nope"), batch(named_example(ROWS[0]))),
    ):
        await expect_error(Code.NOT_FOUND, call, "Servable not found for request: Latest(nope)")
    await expect_error(
        Code.NOT_FOUND,
        backend.predict(ModelSpec("iris", 2), inputs),
        "Servable not found for request: Specific(iris, 2)",
    )
    await expect_error(
        Code.NOT_FOUND,
        backend.metadata(ModelSpec("iris", label="gone")),
        "Servable not found for request: Specific(iris, 7)",
    )
    for name in ("iris", "nope"):
        await expect_error(
            Code.INVALID_ARGUMENT,
            backend.metadata(ModelSpec(name, label="beta")),
            "Unrecognized servable version label: beta",
        )
    assert (await backend.metadata(ModelSpec("iris", label="stable"))).version == 1


# ---------------------------------------------------------------------- versions


@pytest.fixture(scope="module")
def versioned_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`multi` with versions 1, 2 and 003 (each a different C), plus a non-version dir."""
    base = tmp_path_factory.mktemp("versions") / "multi"
    for version, c in (("1", 0.01), ("2", 0.1), ("003", 1.0)):
        save_model(iris_model(c), base / version)
    (base / "tmp-upload").mkdir()
    return base


async def test_latest_version_is_the_default(start: Start, versioned_dir: Path) -> None:
    backend = await start(ModelSource("multi", str(versioned_dir)))
    assert [s.version for s in await backend.status("multi", None)] == [3]
    assert (await backend.metadata(ModelSpec("multi"))).version == 3


async def test_version_policies_and_labels(start: Start, versioned_dir: Path) -> None:
    labels = {"stable": 1, "canary": 3}
    backend = await start(
        ModelSource("multi", str(versioned_dir), VersionPolicy(kind="all"), labels)
    )
    statuses = await backend.status("multi", None)
    assert [(s.version, s.state) for s in statuses] == [
        (v, ModelState.AVAILABLE) for v in (3, 2, 1)
    ]
    for version, c in ((1, 0.01), (2, 0.1), (3, 1.0)):
        spec = ModelSpec("multi", version, signature_name="predict_proba")
        out = await backend.predict(spec, {"inputs": ROWS})
        np.testing.assert_allclose(out["outputs"], iris_model(c).predict_proba(ROWS))
    assert (await backend.metadata(ModelSpec("multi", label="stable"))).version == 1
    assert (await backend.metadata(ModelSpec("multi", label="canary"))).version == 3
    assert [s.version for s in await backend.status("multi", 2)] == [2]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (VersionPolicy(), [3]),
        (VersionPolicy(kind="latest", num_versions=2), [2, 3]),
        (VersionPolicy(kind="all"), [1, 2, 3]),
        (VersionPolicy(kind="specific", versions=(1, 3, 9)), [1, 3]),
    ],
)
def test_select_versions(policy: VersionPolicy, expected: list[int], versioned_dir: Path) -> None:
    on_disk = scan_versions(versioned_dir)
    assert sorted(on_disk) == [1, 2, 3]
    assert on_disk[3].name == "003"
    assert select_versions(policy, on_disk) == expected


def test_scan_versions_of_a_missing_base_path(tmp_path: Path) -> None:
    assert scan_versions(tmp_path / "absent") == {}


# ---------------------------------------------------------------- status and load errors


async def test_failed_versions_are_end_and_others_keep_serving(
    start: Start, models_dir: Path
) -> None:
    broken = models_dir / "broken"
    save_model(iris_model(), broken / "1")
    (broken / "2").mkdir()  # no artifact
    (broken / "3").mkdir()
    (broken / "3" / "model.skops").write_bytes(b"not a zip file")
    save_model(FunctionTransformer(eval), broken / "4")  # names builtins.eval
    save_model(iris_model(), broken / "5")
    (broken / "5" / "metadata.json").write_text("{truncated")
    backend = await start(source(models_dir, "broken", version_policy=VersionPolicy("all")), "iris")
    statuses = {s.version: s for s in await backend.status("broken", None)}
    assert list(statuses) == [5, 4, 3, 2, 1]
    assert statuses[1].state == ModelState.AVAILABLE
    assert statuses[1].error_code == Code.OK
    expected = {
        2: (Code.NOT_FOUND, "no model.skops or model.joblib"),
        3: (Code.DATA_LOSS, "model.skops: BadZipFile"),
        4: (Code.FAILED_PRECONDITION, "builtins.eval"),
        5: (Code.DATA_LOSS, "metadata.json"),
    }
    for version, (code, fragment) in expected.items():
        status = statuses[version]
        assert (status.state, status.error_code) == (ModelState.END, code)
        assert fragment in status.error_message
        assert str(models_dir) not in status.error_message
    # Latest skips failed versions; a failed version is not found; other models serve.
    assert (await backend.metadata(ModelSpec("broken"))).version == 1
    await expect_error(
        Code.NOT_FOUND, backend.metadata(ModelSpec("broken", 3)), "Specific(broken, 3)"
    )
    out = await backend.predict(ModelSpec("iris", 1), {"inputs": ROWS})
    assert out["outputs"].tolist() == [0, 1, 2]


async def test_status_errors(start: Start) -> None:
    backend = await start("iris")
    await expect_error(
        Code.NOT_FOUND, backend.status("nope", None), "Could not find any versions of model nope"
    )
    await expect_error(
        Code.NOT_FOUND, backend.status("iris", 4), "Could not find version 4 of model iris"
    )


def patch_release(version: str) -> str:
    """`version` with another patch number: same major.minor, so it still loads."""
    major, minor = version.split(".")[:2]
    return f"{major}.{minor}.999"


async def test_joblib_artifact_without_sidecar_reports_version_mismatch(
    start: Start, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version_dir = models_dir / "old" / "1"
    version_dir.mkdir(parents=True)
    older = patch_release(sklearn.__version__)
    with monkeypatch.context() as patch:  # pickle it as another scikit-learn patch release would
        patch.setattr(sklearn.base, "__version__", older)
        joblib.dump(iris_model(), version_dir / "model.joblib")
    backend = await start(source(models_dir, "old", allow_pickle=True))
    info: Any = (await backend.metadata(ModelSpec("old"))).extra["sklearn"]
    assert info["format"] == "joblib"
    assert info["saved_with"] == {"sklearn": older}
    assert info["version_mismatch"] is True
    assert "no metadata.json" in info["warnings"][0]
    out = await backend.predict(ModelSpec("old", 1), {"inputs": ROWS})
    assert out["outputs"].tolist() == [0, 1, 2]


async def test_sidecar_patch_version_mismatch_still_loads(start: Start, models_dir: Path) -> None:
    save_model(iris_model(), models_dir / "lib" / "1", fmt="joblib")
    sidecar = models_dir / "lib" / "1" / "metadata.json"
    data = json.loads(sidecar.read_text())
    data["saved_with"]["sklearn"] = patch_release(sklearn.__version__)
    sidecar.write_text(json.dumps(data))
    backend = await start(source(models_dir, "lib", allow_pickle=True))
    info: Any = (await backend.metadata(ModelSpec("lib"))).extra["sklearn"]
    assert (info["format"], info["version_mismatch"], info["mismatched"], info["warnings"]) == (
        "joblib",
        True,
        ["sklearn"],
        [],
    )


# ---------------------------------------------------------------- classify and regress


async def test_classify_named_features_and_inputs(start: Start) -> None:
    backend = await start("iris")
    expected = iris_model().predict_proba(ROWS)
    named = await backend.classify(ModelSpec("iris", 1), batch(*map(named_example, ROWS)))
    positional = await backend.classify(
        ModelSpec("iris", 1), batch(*({"inputs": Feature("float", tuple(r))} for r in ROWS))
    )
    for results in (named, positional):
        assert [[label for label, _ in r.classes] for r in results] == [["0", "1", "2"]] * 3
        np.testing.assert_allclose([[s for _, s in r.classes] for r in results], expected)


async def test_classify_with_context_and_int_features(start: Start) -> None:
    backend = await start("iris")
    shared = {"sepal_length": Feature("int64", (6,)), "sepal_width": Feature("float", (3.0,))}
    examples = [
        {"petal_length": Feature("float", (1.5,)), "petal_width": Feature("float", (0.2,))},
        {"petal_length": Feature("float", (5.5,)), "petal_width": Feature("float", (2.1,))},
    ]
    results = await backend.classify(ModelSpec("iris", 1), batch(*examples, context=shared))
    rows = np.array([[6, 3.0, 1.5, 0.2], [6, 3.0, 5.5, 2.1]])
    np.testing.assert_allclose(
        [[s for _, s in r.classes] for r in results], iris_model().predict_proba(rows)
    )
    clash = batch(
        examples[0], {**examples[1], "sepal_width": Feature("float", (1.0,))}, context=shared
    )
    await expect_error(
        Code.INVALID_ARGUMENT,
        backend.classify(ModelSpec("iris", 1), clash),
        "Example 1: feature 'sepal_width' is in both the context and the example",
    )


async def test_classify_with_decision_function_scores(start: Start, models_dir: Path) -> None:
    svc = LinearSVC().fit(IRIS_X[:100], IRIS_Y[:100])  # binary: one score column
    save_model(svc, models_dir / "svc" / "1", feature_names=IRIS_FEATURES)
    backend = await start("svc")
    info: Any = (await backend.metadata(ModelSpec("svc"))).extra["sklearn"]
    assert info["classify_scores"] == "decision_function"
    results = await backend.classify(ModelSpec("svc", 1), batch(*map(named_example, ROWS)))
    scores = svc.decision_function(ROWS)
    np.testing.assert_allclose([[s for _, s in r.classes] for r in results], np.c_[-scores, scores])


async def test_regress_matches_predict(start: Start) -> None:
    backend = await start("diabetes")
    names = load_diabetes().feature_names
    rows = DIABETES_X[:3]
    examples = [
        {n: Feature("float", (float(v),)) for n, v in zip(names, r, strict=True)} for r in rows
    ]
    values = await backend.regress(ModelSpec("diabetes", 1), batch(*examples))
    expected = Ridge(alpha=0.1).fit(DIABETES_X, DIABETES_Y).predict(rows)
    np.testing.assert_allclose(values, expected)
    assert all(isinstance(v, float) for v in values)


async def test_classify_and_regress_errors(start: Start) -> None:
    backend = await start("iris", "diabetes")
    iris, good = ModelSpec("iris", 1), named_example(ROWS[0])

    async def fails(example: dict[str, Feature], *fragments: str) -> None:
        await expect_error(
            Code.INVALID_ARGUMENT, backend.classify(iris, batch(good, example)), *fragments
        )

    await fails({**good, "color": Feature("float", (1.0,))}, "Example 1: feature 'color'")
    missing = {k: v for k, v in good.items() if k != "petal_width"}
    await fails(missing, "Example 1: feature 'petal_width' is missing")
    await fails(
        {**good, "sepal_width": Feature("bytes", (b"3",))}, "feature 'sepal_width'", "bytes"
    )
    await fails({**good, "sepal_width": Feature("float", (1.0, 2.0))}, "exactly one value, got 2")
    await fails(
        {**good, "petal_length": Feature("float", (float("nan"),))}, "'petal_length' is NaN"
    )
    await fails({"inputs": Feature("float", (1.0, 2.0))}, "feature 'inputs' must hold 4 values")
    await expect_error(
        Code.INVALID_ARGUMENT,
        backend.regress(iris, batch(good)),
        "not a regressor",
        ":classify",
    )
    await expect_error(
        Code.INVALID_ARGUMENT,
        backend.classify(ModelSpec("diabetes", 1), batch(good)),
        "not a classifier",
        ":regress",
    )
    await expect_error(
        Code.INVALID_ARGUMENT,
        backend.classify(ModelSpec("iris", 1, signature_name="nope"), batch(good)),
        "No signature was found with the name: nope",
    )


async def test_classify_without_feature_names_needs_inputs(start: Start, models_dir: Path) -> None:
    save_model(iris_model(), models_dir / "anon" / "1")
    backend = await start("anon")
    await expect_error(
        Code.INVALID_ARGUMENT,
        backend.classify(ModelSpec("anon", 1), batch(named_example(ROWS[0]))),
        "Example 0: the model has no feature names",
        "'inputs'",
    )


# ------------------------------------------------------------ concurrency and lifecycle


async def test_slow_estimator_does_not_block_the_loop(start: Start, models_dir: Path) -> None:
    base = models_dir / "slow"
    save_model(FunctionTransformer(gated_identity), base / "1")
    trusted = [f"{__name__}.gated_identity"]
    backend = await start("slow", "iris", max_workers=2, extra_trusted_types=trusted)
    _ENTERED.clear()
    _RELEASE.clear()
    order: list[str] = []

    async def call(name: str, rows: np.ndarray) -> dict[str, np.ndarray]:
        out = await backend.predict(ModelSpec(name, 1), {"inputs": rows})
        order.append(name)
        return out

    slow = asyncio.create_task(call("slow", np.full((1, 4), SLOW)))
    assert await asyncio.to_thread(_ENTERED.wait, 10)
    fast = await call("iris", ROWS)
    assert fast["outputs"].tolist() == [0, 1, 2]
    assert not slow.done()
    # Unload version 1 while its request is in flight: the request still completes.
    save_model(FunctionTransformer(gated_identity), base / "2")
    await backend.reload()
    assert [(s.version, s.state) for s in await backend.status("slow", None)] == [
        (2, ModelState.AVAILABLE),
        (1, ModelState.END),
    ]
    _RELEASE.set()
    assert (await slow)["outputs"].tolist() == [[SLOW] * 4]
    assert order == ["iris", "slow"]


async def test_close_unloads_every_version(models_dir: Path) -> None:
    backend = SklearnBackend([source(models_dir, "iris")])
    await backend.start()
    await backend.close()
    await expect_error(Code.NOT_FOUND, backend.predict(ModelSpec("iris", 1), {"inputs": ROWS}))
    assert (await backend.status("iris", None))[0].state == ModelState.END


# ------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("numpy.float64", True),
        ("scipy.sparse._csr.csr_matrix", True),
        ("builtins.slice", True),
        ("builtins.eval", False),
        ("builtins.open", False),
        ("os.system", False),
        ("functools.partial", False),
        ("sklearnx.Model", False),
    ],
)
def test_trust_policy(name: str, trusted: bool) -> None:
    assert is_trusted_type(name) is trusted


def test_scrub_message_removes_paths() -> None:
    text = "cannot open '/tmp/x/model.skops' or C:\\models\\m.joblib\n(see ~/log)"
    assert scrub_message(text) == "cannot open '<path>' or <path> (see <path>)"
    kept = "method tensorflow/serving/predict, 3/4, see https://scikit-learn.org/a/b.html"
    assert scrub_message(kept) == kept


def test_save_model_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3 feature names"):
        save_model(iris_model(), tmp_path / "1", feature_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="unknown format 'pickle'"):
        save_model(iris_model(), tmp_path / "1", fmt="pickle")  # type: ignore[arg-type]


def test_save_model_replaces_the_other_format(tmp_path: Path) -> None:
    save_model(iris_model(), tmp_path / "1")
    save_model(iris_model(), tmp_path / "1", fmt="joblib")
    assert sorted(p.name for p in (tmp_path / "1").iterdir()) == ["metadata.json", "model.joblib"]
