"""Micro-batching of concurrent scikit-learn requests, with real estimators and threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from clients.inprocess.batching import Batcher, BatchingOptions, BatchStats
from clients.sklearn_backend import SklearnBackend, save_model
from clients.types import Code, ExampleBatch, Feature, ModelSource, ModelSpec, ServingError
from gateway.settings import Settings
from tests.conftest import StartSklearn, gateway_client, sklearn_model_configs

IRIS_X, IRIS_Y = load_iris(return_X_y=True)
DIABETES_X, DIABETES_Y = load_diabetes(return_X_y=True)
LR = LogisticRegression(max_iter=1000).fit(IRIS_X, IRIS_Y)
FOREST = RandomForestClassifier(n_estimators=10, random_state=0).fit(IRIS_X, IRIS_Y)
RIDGE = Ridge().fit(DIABETES_X, DIABETES_Y)
# One request per entry: mostly single rows, some with several rows.
REQUESTS = [IRIS_X[[i]] for i in (0, 50, 100, 7, 77)] + [IRIS_X[[1, 51, 101]], IRIS_X[[2, 3]]]
HANG_GUARD = 30  # seconds; only stops a broken test from hanging, never measures anything


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris (LogisticRegression), forest, diabetes (Ridge) and a non-row-wise pipeline."""
    base = tmp_path_factory.mktemp("batching")
    save_model(LR, base / "iris" / "1")
    save_model(FOREST, base / "forest" / "1")
    save_model(RIDGE, base / "diabetes" / "1")
    save_model(make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(
        IRIS_X, IRIS_Y), base / "logpipe" / "1")  # fmt: skip
    return base


Start = Callable[..., Awaitable[SklearnBackend]]


@pytest.fixture
def start(models_dir: Path, start_sklearn: StartSklearn) -> Start:
    """`await start(BatchingOptions(...))`: a started backend over every model, closed after."""

    async def _start(options: BatchingOptions | None = None) -> SklearnBackend:
        names = ("iris", "forest", "diabetes", "logpipe")
        sources = [ModelSource(name, str(models_dir / name)) for name in names]
        return await start_sklearn(*sources, batching=options or BatchingOptions())

    return _start


async def together(*calls: Awaitable[Any]) -> list[Any]:
    """Start every call in the same event-loop tick; results (or exceptions) in order."""
    gathered = asyncio.gather(*calls, return_exceptions=True)
    return list(await asyncio.wait_for(gathered, HANG_GUARD))


def predict(
    backend: SklearnBackend, x: np.ndarray, model: str = "iris", signature: str = ""
) -> Awaitable[dict[str, np.ndarray]]:
    """`backend.predict` of rows `x` with `signature`."""
    return backend.predict(ModelSpec(model, 1, signature_name=signature), {"inputs": x})


def split(result: np.ndarray, requests: list[np.ndarray]) -> list[np.ndarray]:
    """`result` (of the requests' rows stacked) cut back into one piece per request."""
    return np.split(result, np.cumsum([len(x) for x in requests])[:-1])


async def test_concurrent_requests_share_one_call_and_get_their_rows(start: Start) -> None:
    backend = await start()
    for signature, method in [("", LR.predict), ("predict_proba", LR.predict_proba)]:
        before = backend.batch_stats.batches
        outputs = await together(*(predict(backend, x, signature=signature) for x in REQUESTS))
        assert backend.batch_stats.batches == before + 1
        expected = split(method(np.vstack(REQUESTS)), REQUESTS)
        for output, want in zip(outputs, expected, strict=True):
            assert output["outputs"].tobytes() == want.tobytes()  # bit for bit
    assert backend.batch_stats.sizes == {len(REQUESTS): 2}
    assert backend.batch_stats.rows == 2 * sum(len(x) for x in REQUESTS)


async def test_merged_results_equal_one_request_calls(start: Start) -> None:
    backend = await start()
    labels = await together(*(predict(backend, x) for x in REQUESTS))
    forest = await together(*(predict(backend, x, "forest", "predict_proba") for x in REQUESTS))
    proba = await together(*(predict(backend, x, signature="predict_proba") for x in REQUESTS))
    assert backend.batch_stats.sizes == {len(REQUESTS): 3}
    for x, label, trees, p in zip(REQUESTS, labels, forest, proba, strict=True):
        # Labels and trees are bit-identical to a call on the request alone ...
        assert label["outputs"].tobytes() == LR.predict(x).tobytes()
        assert trees["outputs"].tobytes() == FOREST.predict_proba(x).tobytes()
        # ... BLAS products may round the last bit differently for another number of rows.
        np.testing.assert_allclose(p["outputs"], LR.predict_proba(x), rtol=1e-13, atol=1e-15)


async def test_a_bad_request_gets_its_own_error_and_the_others_succeed(start: Start) -> None:
    backend = await start()
    bad_shape = IRIS_X[[0], :3]
    nan_row = np.array([[5.0, np.nan, 1.0, 0.2]])
    calls = [REQUESTS[0], bad_shape, REQUESTS[1], nan_row, REQUESTS[5]]
    results = await together(*(predict(backend, x, signature="predict_proba") for x in calls))
    for index in (1, 3):
        error = results[index]
        assert isinstance(error, ServingError) and error.code == Code.INVALID_ARGUMENT
    assert "expected shape [-1,4]" in results[1].message
    assert "NaN" in results[3].message
    for index in (0, 2, 4):
        np.testing.assert_allclose(results[index]["outputs"], LR.predict_proba(calls[index]))
    # The shape error never joined; the NaN broke the merged call, so all four re-ran alone.
    assert backend.batch_stats.sizes == {4: 1}
    assert backend.batch_stats.fallbacks == 4


async def test_a_lone_request_runs_at_once_in_a_batch_of_one(start: Start) -> None:
    backend = await start()
    output = await asyncio.wait_for(predict(backend, REQUESTS[0]), HANG_GUARD)
    assert output["outputs"].tolist() == LR.predict(REQUESTS[0]).tolist()
    assert backend.batch_stats.sizes == {1: 1}


async def test_a_full_batch_does_not_wait_for_max_wait(start: Start) -> None:
    backend = await start(BatchingOptions(max_size=4, max_wait_ms=600_000))
    rows = [IRIS_X[[i]] for i in range(4)]
    outputs = await together(*(predict(backend, x) for x in rows))
    assert [o["outputs"][0] for o in outputs] == LR.predict(np.vstack(rows)).tolist()
    assert backend.batch_stats.sizes == {4: 1}


async def test_with_max_wait_a_lone_request_runs_when_the_wait_ends(start: Start) -> None:
    backend = await start(BatchingOptions(max_wait_ms=1))
    output = await asyncio.wait_for(predict(backend, REQUESTS[0]), HANG_GUARD)
    assert output["outputs"].tolist() == LR.predict(REQUESTS[0]).tolist()
    assert backend.batch_stats.sizes == {1: 1}


async def test_inline_batches_merge_the_same_way(start: Start) -> None:
    backend = await start(BatchingOptions(inline=True))
    outputs = await together(*(predict(backend, x, signature="predict_proba") for x in REQUESTS))
    expected = split(LR.predict_proba(np.vstack(REQUESTS)), REQUESTS)
    assert [o["outputs"].tobytes() for o in outputs] == [e.tobytes() for e in expected]
    assert backend.batch_stats.sizes == {len(REQUESTS): 1}


async def test_requests_that_queue_during_a_call_join_the_next_call() -> None:
    entered, release = threading.Event(), threading.Event()
    executor = ThreadPoolExecutor(2)

    def gated(job: Callable[[], None]) -> None:
        def run() -> None:
            entered.set()
            release.wait(HANG_GUARD)
            job()

        executor.submit(run)

    stats = BatchStats()
    batcher = Batcher(LR.predict_proba, BatchingOptions(), stats, gated)
    try:
        first = batcher.submit(IRIS_X[[0]])
        assert await asyncio.to_thread(entered.wait, HANG_GUARD)  # the first call is running
        later = [batcher.submit(x) for x in REQUESTS[1:4]]
        await asyncio.sleep(0)
        assert stats.sizes == {1: 1}  # queued behind the running call, not started
        release.set()
        results = await asyncio.wait_for(asyncio.gather(first, *later), HANG_GUARD)
    finally:
        release.set()
        executor.shutdown()
    assert stats.sizes == {1: 1, 3: 1}
    assert results[0].tobytes() == LR.predict_proba(IRIS_X[[0]]).tobytes()
    merged = split(LR.predict_proba(np.vstack(REQUESTS[1:4])), REQUESTS[1:4])
    assert [r.tobytes() for r in results[1:]] == [m.tobytes() for m in merged]


@pytest.mark.parametrize(("inline_below_ms", "inline_later"), [(60_000.0, True), (0.0, False)])
async def test_cheap_models_move_onto_the_event_loop(
    inline_below_ms: float, inline_later: bool
) -> None:
    """The first call (cost unknown) runs in the pool; once measured below the bound, inline."""
    threads: list[int] = []

    def op(x: np.ndarray) -> np.ndarray:
        threads.append(threading.get_ident())
        return np.asarray(LR.predict_proba(x))

    executor = ThreadPoolExecutor(1)

    def submit(job: Callable[[], None]) -> None:
        executor.submit(job)

    batcher = Batcher(op, BatchingOptions(inline_below_ms=inline_below_ms), BatchStats(), submit)
    try:
        for x in REQUESTS[:3]:
            result = await asyncio.wait_for(batcher.submit(x), HANG_GUARD)
            assert result.tobytes() == LR.predict_proba(x).tobytes()
    finally:
        executor.shutdown()
    loop_thread = threading.get_ident()
    assert threads[0] != loop_thread
    assert [t == loop_thread for t in threads[1:]] == [inline_later, inline_later]
    assert batcher.runs_inline is inline_later


async def test_batching_off_gives_one_call_per_request(start: Start) -> None:
    backend = await start(BatchingOptions(enabled=False))
    outputs = await together(*(predict(backend, x, signature="predict_proba") for x in REQUESTS))
    assert backend.batch_stats.solo == len(REQUESTS)
    assert backend.batch_stats.batches == 0
    for x, output in zip(REQUESTS, outputs, strict=True):
        assert output["outputs"].tobytes() == LR.predict_proba(x).tobytes()


async def test_big_requests_and_non_row_wise_models_run_on_their_own(start: Start) -> None:
    backend = await start(BatchingOptions(max_size=8))
    big = IRIS_X[:9]
    outputs = await together(predict(backend, big), predict(backend, REQUESTS[0], "logpipe"))
    assert outputs[0]["outputs"].tolist() == LR.predict(big).tolist()
    assert backend.batch_stats.solo == 2
    assert backend.batch_stats.batches == 0


async def test_classify_and_regress_merge_too(start: Start) -> None:
    backend = await start()
    iris = [ExampleBatch(({"inputs": Feature("float", tuple(x[0]))},)) for x in REQUESTS[:5]]
    rows = [ExampleBatch(({"inputs": Feature("float", tuple(x))},)) for x in DIABETES_X[:5]]
    classified = await together(*(backend.classify(ModelSpec("iris", 1), b) for b in iris))
    regressed = await together(*(backend.regress(ModelSpec("diabetes", 1), b) for b in rows))
    assert backend.batch_stats.sizes == {5: 2}
    for batch, result in zip(iris, classified, strict=True):
        x = np.array([batch.examples[0]["inputs"].values])
        assert [label for label, _ in result[0].classes] == ["0", "1", "2"]
        np.testing.assert_allclose([s for _, s in result[0].classes], LR.predict_proba(x)[0])
    np.testing.assert_allclose([r[0] for r in regressed], RIDGE.predict(DIABETES_X[:5]))


async def test_concurrent_http_requests_equal_one_at_a_time(sklearn_models_dir: Path) -> None:
    settings = Settings(models=sklearn_model_configs(sklearn_models_dir), access_log=False)
    rows = [[float(v) for v in x] for x in IRIS_X[::10]]
    signatures = ("serving_default", "predict_proba")
    bodies = [{"signature_name": sig, "instances": [row]} for row in rows for sig in signatures]
    async with gateway_client(settings) as http:
        url = "/v1/models/iris:predict"
        alone = [(await http.post(url, json=body)).json() for body in bodies]
        responses = await together(*(http.post(url, json=body) for body in bodies))
    together_json = [response.json() for response in responses]
    assert all(response.status_code == 200 for response in responses), together_json
    for one, merged, body in zip(alone, together_json, bodies, strict=True):
        if body["signature_name"] == "predict_proba":
            np.testing.assert_allclose(merged["predictions"], one["predictions"], rtol=1e-13)
        else:
            assert merged == one
