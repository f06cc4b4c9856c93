"""Pipelines end to end: a gateway process in front of a separate TF-Serving-compatible
backend process, scikit-learn steps in-process, the example's wine models (no mocks).

The module shares one backend and one gateway; the test that stops the backend runs last.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_wine

from clients.embedded import EmbeddedTfServing
from clients.sklearn_backend import load_artifact
from clients.types import ModelSource
from examples.pipeline_models import CLASSIFIER, SCALER, SEGMENTS, build_wine_pipeline
from tests.conftest import GatewayProcess, spawn_gateway, wait_until_ready

STEPS = [
    {"model": SCALER, "signature": "transform"},
    {"model": CLASSIFIER},
    {"model": SEGMENTS, "signature": "predict"},
]
DISTANCES = [*STEPS[:2], {"model": SEGMENTS, "signature": "transform"}]
ROWS = load_wine().data[:7]


@dataclass(frozen=True)
class Served:
    """The running backend and gateway, and where the models live."""

    models: Path
    backend: EmbeddedTfServing
    gateway: GatewayProcess


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    models = tmp_path_factory.mktemp("wine-models")
    build_wine_pipeline(models)
    backend = EmbeddedTfServing([ModelSource(CLASSIFIER, str(models / CLASSIFIER))], poll_seconds=1)
    backend.start()
    try:
        assert asyncio.run(backend.wait_until_listening(180)), "the backend did not start"
        config: dict[str, Any] = {
            "tf_serving_target": backend.target,
            "metadata_ttl_seconds": 0,
            "sklearn_poll_seconds": 0.2,
            "tf_status_poll_seconds": 0.3,
            "tf_retry_max_attempts": 2,
            "codec_processes": 0,
            "access_log": False,
            "models": [
                {"name": SCALER, "platform": "sklearn", "base_path": str(models / SCALER)},
                {
                    "name": CLASSIFIER,
                    "platform": "tensorflow",
                    "base_path": str(models / CLASSIFIER),
                },
                {"name": SEGMENTS, "platform": "sklearn", "base_path": str(models / SEGMENTS)},
                {"name": "wine", "platform": "pipeline", "steps": STEPS},
                {"name": "wine_distances", "platform": "pipeline", "steps": DISTANCES},
            ],
        }
        workdir = tmp_path_factory.mktemp("wine-gateway")
        with spawn_gateway(config, workdir) as gateway:
            wait_until_ready(gateway.url, gateway.process, gateway.log)
            yield Served(models, backend, gateway)
    finally:
        backend.stop()


def composed(models: Path, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same three steps computed here: (segments, distances)."""
    import tensorflow as tf

    scaler = load_artifact(models / SCALER / "1").estimator
    segments = load_artifact(models / SEGMENTS / "1").estimator
    classifier = tf.saved_model.load(str(models / CLASSIFIER / "1"))
    scaled = scaler.transform(rows).astype(np.float32)
    found = classifier.signatures["serving_default"](features=tf.constant(scaled))
    probabilities = np.asarray(found["probabilities"], dtype=np.float64)
    return segments.predict(probabilities), segments.transform(probabilities)


def test_answer_equals_the_composition_computed_in_process(served: Served) -> None:
    labels, distances = composed(served.models, ROWS)
    url = served.gateway.url
    rows = ROWS.tolist()
    answer = httpx.post(f"{url}/v1/models/wine:predict", json={"instances": rows}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == labels.tolist()
    columnar = httpx.post(f"{url}/v1/models/wine_distances:predict", json={"inputs": rows})
    assert columnar.status_code == 200, columnar.text
    np.testing.assert_allclose(columnar.json()["outputs"], distances, rtol=1e-5, atol=1e-6)
    timing = answer.headers["server-timing"]
    for index, step in enumerate(STEPS, start=1):
        assert f"step{index}.{step['model']};dur=" in timing


def test_metadata_status_and_v2(served: Served) -> None:
    url = served.gateway.url
    metadata = httpx.get(f"{url}/v1/models/wine/metadata").json()
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert list(signature["inputs"]) == ["inputs"]  # the scaler's input
    assert signature["inputs"]["inputs"]["dtype"] == "DT_DOUBLE"
    assert list(signature["outputs"]) == ["outputs"]  # the segments' predict
    steps = metadata["metadata"]["pipeline"]["steps"]
    assert [s["model"] for s in steps] == [SCALER, CLASSIFIER, SEGMENTS]
    status = httpx.get(f"{url}/v1/models/wine").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [("1", "AVAILABLE")]
    assert httpx.get(f"{url}/v2/models/wine/ready").status_code == 200
    v2_meta = httpx.get(f"{url}/v2/models/wine").json()
    assert v2_meta["inputs"] == [{"name": "inputs", "datatype": "FP64", "shape": [-1, 13]}]
    infer = {
        "inputs": [
            {
                "name": "inputs",
                "shape": list(ROWS.shape),
                "datatype": "FP64",
                "data": ROWS.ravel().tolist(),
            }
        ]
    }
    answer = httpx.post(f"{url}/v2/models/wine/infer", json=infer)
    assert answer.status_code == 200, answer.text
    labels, _ = composed(served.models, ROWS)
    assert answer.json()["outputs"][0]["data"] == labels.tolist()


def _publish_copy(base: Path, version: int) -> None:
    """Version `version` of `base`: a copy of version 1, renamed into place whole."""
    staging = base / f".staging-{version}"
    shutil.copytree(base / "1", staging)
    staging.rename(base / str(version))


async def _serving_version(http: httpx.AsyncClient, model: str, version: int) -> bool:
    status = (await http.get(f"/v1/models/{model}")).json().get("model_version_status", [])
    states = {s["version"]: s["state"] for s in status}
    return states.get(str(version)) == "AVAILABLE" and states.get(str(version - 1)) == "END"


@pytest.mark.parametrize("model", [SCALER, CLASSIFIER, SEGMENTS])
async def test_a_version_swap_of_each_step_under_load_fails_no_request(
    served: Served, model: str
) -> None:
    base = served.models / model
    version = max(int(p.name) for p in base.iterdir() if p.name.isdigit()) + 1
    body = {"instances": ROWS.tolist()}
    expected = composed(served.models, ROWS)[0].tolist()
    failures: list[str] = []
    answered = 0
    swapped = asyncio.Event()

    async with httpx.AsyncClient(base_url=served.gateway.url, timeout=30) as http:

        async def caller() -> None:
            nonlocal answered
            while not swapped.is_set():
                response = await http.post("/v1/models/wine:predict", json=body)
                if response.status_code != 200 or response.json()["predictions"] != expected:
                    failures.append(f"{response.status_code} {response.text[:300]}")
                answered += 1

        callers = [asyncio.create_task(caller()) for _ in range(6)]
        await asyncio.sleep(0.5)
        _publish_copy(base, version)
        async with asyncio.timeout(60):
            while not await _serving_version(http, model, version):  # noqa: ASYNC110 (HTTP)
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # requests keep running after the old version is gone
        swapped.set()
        await asyncio.gather(*callers)
    assert not failures, failures[:3]
    assert answered > 20


def test_tf_backend_down_the_pipeline_names_its_step_sklearn_keeps_serving(
    served: Served,
) -> None:
    url = served.gateway.url
    served.backend.stop()
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/readyz").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    answer = httpx.post(f"{url}/v1/models/wine:predict", json={"instances": ROWS.tolist()})
    assert answer.status_code == 503, answer.text
    assert f"step 2 ({CLASSIFIER})" in answer.json()["error"]
    scaled = httpx.post(f"{url}/v1/models/{SCALER}:predict", json={"instances": ROWS.tolist()})
    assert scaled.status_code == 200
    status = httpx.get(f"{url}/v1/models/wine").json()["model_version_status"][0]
    assert status["state"] != "AVAILABLE"
    assert f"step 2 ({CLASSIFIER})" in status["status"]["error_message"]
