"""Pipelines that cannot work are refused at start-up, each with an error naming the step;
one whose TF step is not reachable starts unready and says which step it waits for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from clients.embedded import free_port
from clients.pipeline_plan import PipelineConfigError
from clients.sklearn_backend import save_model
from gateway.settings import ModelConfig, Settings
from tests.conftest import gateway_client

X, Y = load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scaler (4 -> 4), named (string classes), segments (KMeans over 3 columns)."""
    base = tmp_path_factory.mktemp("pipeline-config")
    save_model(StandardScaler().fit(X), base / "scaler" / "1")
    names = np.array(["setosa", "versicolor", "virginica"])[Y]
    save_model(LogisticRegression(max_iter=500).fit(X, names), base / "named" / "1")
    save_model(KMeans(2, n_init=2, random_state=0).fit(X[:, :3]), base / "segments" / "1")
    return base


def settings(models: Path, *pipelines: dict[str, Any], **options: Any) -> Settings:
    sklearn = [
        ModelConfig(name=name, platform="sklearn", base_path=str(models / name))
        for name in ("scaler", "named", "segments")
    ]
    configured = [ModelConfig(platform="pipeline", **p) for p in pipelines]
    return Settings(codec_processes=0, models=sklearn + configured, **options)


async def start_fails(config: Settings, message: str) -> None:
    with pytest.raises(PipelineConfigError, match=message):
        async with gateway_client(config):
            pass


def scaler_then(step: dict[str, Any]) -> dict[str, Any]:
    return {"name": "p", "steps": [{"model": "scaler", "signature": "transform"}, step]}


async def test_an_unknown_step(models: Path) -> None:
    config = settings(models, scaler_then({"model": "nope"}))
    await start_fails(config, r"pipeline p, step 2 \(nope\): no model named nope")


async def test_a_step_naming_a_pipeline_cycle(models: Path) -> None:
    cycle = (
        {"name": "a", "steps": [{"model": "b"}]},
        {"name": "b", "steps": [{"model": "a"}]},
    )
    await start_fails(settings(models, *cycle), r"pipeline a, step 1 \(b\): names pipeline b")
    itself = {"name": "me", "steps": [{"model": "scaler"}, {"model": "me"}]}
    await start_fails(settings(models, itself), r"pipeline me, step 2 \(me\): names itself")


async def test_a_missing_output_name(models: Path) -> None:
    config = settings(
        models,
        {
            "name": "p",
            "steps": [
                {"model": "scaler", "signature": "transform", "output": "nope"},
                {"model": "named"},
            ],
        },
    )
    await start_fails(
        config, r"pipeline p, step 1 \(scaler\): signature 'transform' has no output 'nope'"
    )


async def test_a_missing_signature(models: Path) -> None:
    config = settings(models, scaler_then({"model": "named", "signature": "transform"}))
    await start_fails(config, r"step 2 \(named\): version 1 has no signature 'transform'")


async def test_a_dtype_mismatch(models: Path) -> None:
    config = settings(
        models,
        {"name": "p", "steps": [{"model": "named", "signature": "predict"}, {"model": "scaler"}]},
    )
    await start_fails(
        config, r"step 1 \(named\): output 'outputs' is DT_STRING, but pipeline p, step 2"
    )


async def test_a_shape_mismatch(models: Path) -> None:
    config = settings(models, scaler_then({"model": "segments", "signature": "predict"}))
    await start_fails(config, r"step 1 \(scaler\): output 'outputs' has shape \[-1,4\], but")


def test_a_pipeline_needs_steps_and_no_base_path() -> None:
    with pytest.raises(pydantic.ValidationError, match="needs a non-empty 'steps' list"):
        ModelConfig(name="p", platform="pipeline")
    with pytest.raises(pydantic.ValidationError, match="has no base_path"):
        ModelConfig(name="p", platform="pipeline", base_path="x", steps=[{"model": "a"}])
    with pytest.raises(pydantic.ValidationError, match="'steps' are for platform pipeline"):
        ModelConfig(name="m", platform="sklearn", base_path="x", steps=[{"model": "a"}])


async def test_a_good_sklearn_pipeline_answers(models: Path) -> None:
    config = settings(models, scaler_then({"model": "named", "signature": "predict"}))
    async with gateway_client(config) as http:
        answer = await http.post("/v1/models/p:predict", json={"instances": X[:2].tolist()})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == ["setosa", "setosa"]
        tight = await http.post(
            "/v1/models/p:predict",
            json={"instances": X[:2].tolist()},
            headers={"X-Request-Timeout": "0.000001"},
        )
        assert tight.status_code == 504, tight.text


async def test_an_unreachable_tf_step_leaves_the_pipeline_unready_naming_it(models: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    tf_model = ModelConfig(name="classifier", platform="tensorflow", base_path=str(models))
    config = settings(
        models,
        {
            "name": "p",
            "steps": [{"model": "scaler", "signature": "transform"}, {"model": "classifier"}],
        },
        tf_serving_target=nowhere,
        tf_retry_max_attempts=1,
    )
    config.models.insert(0, tf_model)
    async with gateway_client(config) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        answer = await http.post("/v1/models/p:predict", json={"instances": X[:1].tolist()})
        assert answer.status_code == 503, answer.text
        assert "step 2 (classifier)" in answer.json()["error"]
        served = await http.post("/v1/models/scaler:predict", json={"instances": X[:1].tolist()})
        assert served.status_code == 200
