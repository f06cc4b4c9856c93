"""docker-compose.yml, the Dockerfile and the deploy configs agree with each other.

No Docker engine runs here, so this checks what can be checked without one: the files
parse, the gateway points at every TF Serving replica's gRPC port (a dns:/// target over
the replicated service), both see the same models and labels as examples/config.yaml (so
the README's examples work under compose), the TF Serving config is valid for TF Serving's
own proto parser, the image runs as a non-root user with a healthcheck, and .dockerignore
keeps what the image needs.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest
import yaml

from gateway.settings import Settings, load_settings
from tests.conftest import REPO

COMPOSE_TARGET = "dns:///tfserving:8500"


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
    assert gateway["environment"]["GATEWAY_TF_SERVING_TARGET"] == COMPOSE_TARGET
    assert "tfserving" in gateway["depends_on"]


def test_compose_runs_tf_serving_replicas_behind_one_name() -> None:
    tfserving = _compose()["services"]["tfserving"]  # type: ignore[index]
    assert tfserving["deploy"]["replicas"] >= 2
    assert "ports" not in tfserving, "replicas cannot share one host port"
    assert "container_name" not in tfserving, "replicas cannot share one name"
    command = tfserving["command"]
    assert "--allow_version_labels_for_unavailable_models=true" in command


def test_gateway_and_tf_serving_see_the_same_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_TF_SERVING_TARGET", raising=False)
    settings = load_settings(REPO / "deploy" / "gateway-compose.yaml")
    assert settings.tf_serving_target == COMPOSE_TARGET
    tf_models = {
        m.name: (m.base_path, m.version_labels)
        for m in settings.models
        if m.platform == "tensorflow"
    }

    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(
        (REPO / "deploy" / "tfserving-models.config").read_text(),
        model_server_config_pb2.ModelServerConfig(),
    )
    served = {
        c.name: (c.base_path, dict(c.version_labels)) for c in config.model_config_list.config
    }
    assert served == tf_models

    services = _compose()["services"]
    assert isinstance(services, dict)
    for name in ("tfserving", "gateway"):
        assert any(volume.startswith("models:/models") for volume in services[name]["volumes"])
    assert services["models"]["command"][:2] == ["gateway", "build-examples"]


def test_compose_serves_the_models_and_labels_of_the_default_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README's examples (label `stable` included) work under compose as by default."""
    monkeypatch.delenv("GATEWAY_TF_SERVING_TARGET", raising=False)
    compose = load_settings(REPO / "deploy" / "gateway-compose.yaml")
    default = load_settings(REPO / "examples" / "config.yaml")

    def summary(s: Settings) -> list[tuple[str, str, str, dict[str, int]]]:
        return [(m.name, m.platform, Path(m.base_path).name, m.version_labels) for m in s.models]

    assert summary(compose) == summary(default)
    assert [m.steps for m in compose.models] == [m.steps for m in default.models]
    labels = {(m.name, label) for m in compose.models for label in m.version_labels}
    used = re.findall(r"/v1/models/([\w.-]+)/labels/([\w.-]+):", (REPO / "README.md").read_text())
    assert used, "the README shows label requests"
    assert set(used) <= labels


def test_dockerfile_is_slim_non_root_and_health_checked() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "\nUSER 10001" in dockerfile, "numeric, for Kubernetes' runAsNonRoot"
    assert "--uid 10001" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    for package in ("gateway", "routers", "clients", "tfserving_compat", "examples", "deploy"):
        assert package in copied, f"the image must contain {package}/"
    assert Path(REPO / "pyproject.toml").is_file()


def test_dockerignore_keeps_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = [
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
    ]
    assert "README.md" in copied and "pyproject.toml" in copied
    for source in copied:
        excluded = [p for p in patterns if fnmatch.fnmatch(source, p.lstrip("!"))]
        assert not excluded, f"{source} is COPYed but .dockerignore excludes it ({excluded})"
    for unwanted in (".git", "examples/models", "bench", ".mypy_cache"):
        assert unwanted in patterns, f".dockerignore should exclude {unwanted}"
