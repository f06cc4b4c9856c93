"""docker-compose.yml, the Dockerfile and the deploy configs agree with each other.

No Docker engine runs here, so this checks what can be checked without one: the files
parse, the gateway points at the TF Serving service's gRPC port, both see the same
models, the TF Serving config is valid for TF Serving's own proto parser, and the
image runs as a non-root user with a healthcheck.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.settings import load_settings
from tests.conftest import REPO


def _compose() -> dict[str, object]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def test_compose_runs_a_pinned_tf_serving_and_points_the_gateway_at_it() -> None:
    services = _compose()["services"]
    assert isinstance(services, dict)
    tfserving = services["tfserving"]
    image = tfserving["image"]
    assert image.startswith("tensorflow/serving:")
    assert image.split(":")[1][0].isdigit(), "pin a released tag, not latest"
    assert "--port=8500" in tfserving["command"]
    gateway = services["gateway"]
    assert gateway["build"] == "."
    assert gateway["environment"]["GATEWAY_TF_SERVING_TARGET"] == "tfserving:8500"
    assert "tfserving" in gateway["depends_on"]


def test_gateway_and_tf_serving_see_the_same_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_TF_SERVING_TARGET", raising=False)
    settings = load_settings(REPO / "deploy" / "gateway-compose.yaml")
    assert settings.tf_serving_target == "tfserving:8500"
    tf_models = {m.name: m.base_path for m in settings.models if m.platform == "tensorflow"}

    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(
        (REPO / "deploy" / "tfserving-models.config").read_text(),
        model_server_config_pb2.ModelServerConfig(),
    )
    served = {c.name: c.base_path for c in config.model_config_list.config}
    assert served == tf_models

    services = _compose()["services"]
    assert isinstance(services, dict)
    for name in ("tfserving", "gateway"):
        assert any(volume.startswith("models:/models") for volume in services[name]["volumes"])
    assert services["models"]["command"][:2] == ["gateway", "build-examples"]


def test_dockerfile_is_slim_non_root_and_health_checked() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "\nUSER gateway" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    for package in ("gateway", "routers", "clients", "tfserving_compat", "examples", "deploy"):
        assert package in copied, f"the image must contain {package}/"
    assert Path(REPO / "pyproject.toml").is_file()
