"""scikit-learn models through the gateway's REST API, answered in-process by real estimators."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from clients.embedded import free_port
from clients.sklearn_backend import load_artifact
from gateway.app import create_app
from gateway.settings import ModelConfig, Settings
from tests.conftest import gateway_client, sklearn_model_configs

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def _iris(models_dir: Path) -> object:
    return load_artifact(models_dir / "iris" / "1").estimator


async def test_predict_gives_the_estimators_classes(
    client: httpx.AsyncClient, sklearn_models_dir: Path
) -> None:
    response = await client.post("/v1/models/iris:predict", json={"instances": ROWS})
    assert response.status_code == 200, response.text
    expected = _iris(sklearn_models_dir).predict(np.array(ROWS))  # type: ignore[attr-defined]
    assert response.json() == {"predictions": expected.tolist()}


async def test_predict_proba_signature(client: httpx.AsyncClient, sklearn_models_dir: Path) -> None:
    body = {"signature_name": "predict_proba", "instances": ROWS}
    response = await client.post("/v1/models/iris:predict", json=body)
    assert response.status_code == 200, response.text
    expected = _iris(sklearn_models_dir).predict_proba(np.array(ROWS))  # type: ignore[attr-defined]
    np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-15)


async def test_columnar_request_gets_outputs(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/models/iris:predict", json={"inputs": {"inputs": ROWS}})
    assert response.status_code == 200, response.text
    assert len(response.json()["outputs"]) == 3


async def test_classify_scores_every_class(
    client: httpx.AsyncClient, sklearn_models_dir: Path
) -> None:
    names = ("sepal_length", "sepal_width", "petal_length", "petal_width")
    examples = [dict(zip(names, row, strict=True)) for row in ROWS[:2]]
    examples.append({"inputs": ROWS[2]})
    response = await client.post("/v1/models/iris:classify", json={"examples": examples})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    # tf.Example float features are float32, as in TF Serving: the model sees rounded rows.
    rows = np.array(ROWS, dtype=np.float32).astype(np.float64)
    expected = _iris(sklearn_models_dir).predict_proba(rows)  # type: ignore[attr-defined]
    for result, probabilities in zip(results, expected, strict=True):
        assert [label for label, _ in result] == ["0", "1", "2"]
        np.testing.assert_allclose([score for _, score in result], probabilities, rtol=1e-6)


async def test_regress_on_a_regressor(client: httpx.AsyncClient, sklearn_models_dir: Path) -> None:
    row = [0.04, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]
    response = await client.post(
        "/v1/models/diabetes:regress", json={"examples": [{"inputs": row}]}
    )
    assert response.status_code == 200, response.text
    regressor = load_artifact(sklearn_models_dir / "diabetes" / "1").estimator
    (value,) = response.json()["results"]
    assert value == pytest.approx(float(regressor.predict(np.array([row]))[0]), rel=1e-6)


async def test_status_and_metadata(client: httpx.AsyncClient) -> None:
    status = await client.get("/v1/models/iris")
    assert status.json() == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    metadata = (await client.get("/v1/models/iris/metadata")).json()
    assert metadata["model_spec"] == {"name": "iris", "signature_name": "", "version": "1"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "predict", "predict_proba", "decision_function"} <= set(signatures)
    proba_input = signatures["predict_proba"]["inputs"]["inputs"]
    assert proba_input["dtype"] == "DT_DOUBLE"
    assert proba_input["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""},
        {"size": "4", "name": ""},
    ]
    sklearn_info = metadata["metadata"]["sklearn"]
    assert sklearn_info["estimator"] == "LogisticRegression"
    assert sklearn_info["version_mismatch"] is False


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (
            "/v1/models/iris:predict",
            {"signature_name": "fit", "instances": ROWS},
            400,
            "Available signatures: decision_function, predict, predict_log_proba, predict_proba",
        ),
        (
            "/v1/models/iris:predict",
            {"instances": [5.1, 3.5, 1.4, 0.2]},
            400,
            "expected shape [-1,4]",
        ),
        ("/v1/models/iris:predict", {"instances": [[1.0, 2.0]]}, 400, "expected shape [-1,4]"),
        (
            "/v1/models/iris:predict",
            {"instances": [[1, 2, 3, None]]},
            400,
            "is not of expected type: double",
        ),
        ("/v1/models/iris:regress", {"examples": [{"inputs": ROWS[0]}]}, 400, "not a regressor"),
        (
            "/v1/models/diabetes:classify",
            {"examples": [{"inputs": [0.0] * 10}]},
            400,
            "not a classifier",
        ),
        ("/v1/models/iris:classify", {"examples": [{"sepal_length": 1.0}]}, 400, "sepal_width"),
        (
            "/v1/models/iris/versions/9:predict",
            {"instances": ROWS},
            404,
            "Servable not found for request: Specific(iris, 9)",
        ),
        (
            "/v1/models/iris/labels/nope:predict",
            {"instances": ROWS},
            400,
            "Unrecognized servable version label: nope",
        ),
    ],
)
async def test_errors_say_what_to_fix(
    client: httpx.AsyncClient, path: str, body: object, status: int, message: str
) -> None:
    response = await client.post(path, content=json.dumps(body))
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


async def test_tf_backend_down_sklearn_keeps_serving(sklearn_models_dir: Path) -> None:
    """An unreachable TF Serving: TF requests fail fast with 503, sklearn models still answer."""
    settings = Settings(
        tf_serving_target=f"127.0.0.1:{free_port()}",  # nothing listens there
        request_timeout_seconds=5,
        models=[
            ModelConfig(name="half_plus_two", platform="tensorflow", base_path="/nonexistent"),
            *sklearn_model_configs(sklearn_models_dir),
        ],
    )
    async with gateway_client(settings) as http:
        down = await http.post("/v1/models/half_plus_two:predict", json={"instances": [1.0]})
        assert down.status_code == 503
        assert down.json() == {
            "error": "The TensorFlow Serving backend is unavailable; retry later"
        }
        up = await http.post("/v1/models/iris:predict", json={"instances": ROWS})
        assert up.status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert set(ready.json()["models"]) == {"half_plus_two"}
        assert (await http.get("/healthz")).status_code == 200


async def test_documented_routes_answer_as_the_gateway_does(sklearn_models_dir: Path) -> None:
    """FastAPI's own routing of the documented /v1/ routes (which `GatewayApp` bypasses)
    gives the same answers: a mounted router or a plain FastAPI app stays correct."""
    settings = Settings(models=sklearn_model_configs(sklearn_models_dir))
    app = create_app(settings)

    async def through_fastapi_routes(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["app"] = app
        await FastAPI.__call__(app, scope, receive, send)

    transport = httpx.ASGITransport(app=through_fastapi_routes)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gateway") as routed,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as fast,
    ):
        for method, path, body, status in (
            ("POST", "/v1/models/iris:predict", {"instances": ROWS}, 200),
            ("POST", "/v1/models/iris/versions/1:predict", {"instances": [[1, 2, 3]]}, 400),
            ("GET", "/v1/models/iris", None, 200),
        ):
            want = await fast.request(method, path, json=body)
            got = await routed.request(method, path, json=body)
            assert want.status_code == status, want.text
            assert (got.status_code, got.json()) == (status, want.json()), path
