"""Configuration loading and the OpenAPI docs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from gateway.settings import ModelConfig, Settings, load_settings

CONFIG = """
request_timeout_seconds: 3
models:
  - name: iris
    platform: sklearn
    base_path: models/iris
    version_labels: {stable: 2}
    version_policy: {kind: specific, versions: [1, 2]}
"""


def test_yaml_with_env_overrides_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    monkeypatch.setenv("GATEWAY_REQUEST_TIMEOUT_SECONDS", "7.5")
    monkeypatch.setenv("GATEWAY_TF_SERVING_TARGET", "tfserving:8500")
    settings = load_settings(tmp_path / "config.yaml", port=9001)
    assert settings.request_timeout_seconds == 7.5  # env beats the file
    assert settings.tf_serving_target == "tfserving:8500"
    assert settings.port == 9001  # arguments beat everything
    (model,) = settings.models
    assert model.base_path == str(tmp_path / "models" / "iris")
    source = model.source()
    assert source.version_policy.kind == "specific"
    assert source.version_policy.versions == (1, 2)
    assert source.version_labels == {"stable": 2}


@pytest.mark.parametrize(
    ("models", "problem"),
    [
        ([{"name": "a/b", "platform": "sklearn", "base_path": "x"}], "model name"),
        ([{"name": "a", "platform": "pytorch", "base_path": "x"}], "platform"),
        (
            [{"name": "a", "platform": "sklearn", "base_path": "x"}] * 2,
            "model names must be unique",
        ),
        (
            [
                {
                    "name": "a",
                    "platform": "sklearn",
                    "base_path": "x",
                    "version_policy": {"kind": "specific"},
                }
            ],
            "non-empty 'versions'",
        ),
        (
            [{"name": "a", "platform": "sklearn", "base_path": "x", "version_labels": {"../x": 1}}],
            "version label",
        ),
    ],
)
def test_bad_configs_are_refused_with_a_reason(
    models: list[dict[str, object]], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings.model_validate({"models": models})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.asyncio(loop_scope="session")
async def test_openapi_documents_the_v1_api(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    predict = spec["paths"]["/v1/models/{model_name}:predict"]["post"]
    schema = predict["requestBody"]["content"]["application/json"]["schema"]
    assert {"instances", "inputs", "signature_name"} <= set(schema["properties"])
    assert schema["examples"]
    assert "/v1/models/{model_name}/labels/{label}/metadata" in spec["paths"]
    assert "/readyz" in spec["paths"]
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


@pytest.mark.asyncio(loop_scope="session")
async def test_paths_outside_v1_are_json_404s(client: httpx.AsyncClient) -> None:
    response = await client.get("/statuspage")
    assert response.status_code == 404
    assert "error" in response.json()


def test_model_config_source_defaults() -> None:
    source = ModelConfig(name="m", platform="tensorflow", base_path="/x").source()
    assert source.version_policy.kind == "latest"
    assert source.version_policy.num_versions == 1
