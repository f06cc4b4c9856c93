"""Shared fixtures: a real TF-Serving-compatible backend process, real sklearn models,
and the gateway app driven over HTTP (httpx against the ASGI app)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from clients.embedded import EmbeddedTfServing, free_port
from clients.sklearn_backend import SklearnBackend
from clients.types import ModelSource, VersionPolicy
from gateway.app import create_app
from gateway.logs import json_formatter
from gateway.settings import ModelConfig, Settings

# TF Serving's own test SavedModels, in ../shared beside the repository (CI has them; see
# README "Tests"). TFSERVING_TESTDATA=DIR points elsewhere (=/nonexistent: run as a clone).
REPO = Path(__file__).resolve().parents[1]
TFSERVING_TESTDATA = Path(
    os.environ.get("TFSERVING_TESTDATA") or REPO.parent / "shared" / "testdata" / "tfserving"
)


HAS_TFSERVING_TESTDATA = TFSERVING_TESTDATA.is_dir()
# The one reason every fidelity test skips with when that folder is absent (a plain clone).
TFSERVING_TESTDATA_MISSING = (
    f"fidelity test against TF Serving's own exports: {TFSERVING_TESTDATA} not found "
    "(README, Tests: where that data comes from)"
)
# Marks a test (or a parameter) that compares with TF Serving's own exports.
needs_tfserving_testdata = pytest.mark.skipif(
    not HAS_TFSERVING_TESTDATA, reason=TFSERVING_TESTDATA_MISSING
)


def require_tfserving_testdata() -> Path:
    """The shared testdata folder, or skip the (fidelity) test that needs it, saying why."""
    if not HAS_TFSERVING_TESTDATA:
        pytest.skip(TFSERVING_TESTDATA_MISSING)
    return TFSERVING_TESTDATA


# What no answer may hold: stack traces, file paths, gRPC internals, backend addresses.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "/site-packages",
    "/tmp/",
    str(REPO),
    str(TFSERVING_TESTDATA),
    "127.0.0.1:",
    "localhost:",
    "ipv4:",
    "ipv6:",
    "AioRpcError",
    "StatusCode.",
    "debug_error_string",
)


# The TF models every TF test uses: our own stand-ins for TF Serving's test models, with
# their names, versions and labels, built by examples/tf_models.py for the session
# (`tf_test_models`). name -> (version policy, labels)
TF_TEST_MODELS: dict[str, tuple[VersionPolicy, dict[str, int]]] = {
    "half_plus_two": (VersionPolicy(), {}),
    "two_versions": (VersionPolicy(kind="all"), {"stable": 123, "canary": 124}),
    "half_plus_three": (VersionPolicy(), {}),
    "bad_half_plus_two": (VersionPolicy(), {}),  # a version that fails to load
}
# TF Serving's own exports, served beside them only when ../shared is there, for the
# fidelity tests. name -> (folder under TFSERVING_TESTDATA, version policy, labels)
TF_SERVING_EXPORTS: dict[str, tuple[str, VersionPolicy, dict[str, int]]] = {
    "tfs_half_plus_two": ("saved_model_half_plus_two_cpu", VersionPolicy(), {}),
    "half_plus_two_tf2": ("saved_model_half_plus_two_tf2_cpu", VersionPolicy(), {}),
    "tfs_two_versions": (
        "saved_model_half_plus_two_2_versions",
        VersionPolicy(kind="all"),
        {"stable": 123, "canary": 124},
    ),
}


def build_tf_test_models(models_dir: Path) -> Path:
    """TF_TEST_MODELS in `models_dir`: half_plus_two (y = 0.5x + 2, with TF Serving's
    signatures) at version 123, two_versions at 123 and 124, half_plus_three (0.5x + 3) at
    123, and bad_half_plus_two: version 00000123 holds an old session-bundle export's file
    names and no SavedModel, like TF Serving's own bad_half_plus_two."""
    from examples.tf_models import build_half_plus_two

    build_half_plus_two(models_dir, 123)
    build_half_plus_two(models_dir, 123, name="two_versions")
    build_half_plus_two(models_dir, 124, name="two_versions")
    build_half_plus_two(models_dir, 123, name="half_plus_three", plus=3.0)
    bad = models_dir / "bad_half_plus_two" / "00000123"
    bad.mkdir(parents=True)
    for name in ("checkpoint", "export", "export.meta"):
        (bad / name).write_bytes(b"not a SavedModel\n")
    return models_dir


@pytest.fixture(scope="session")
def tf_test_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of TF_TEST_MODELS' base paths (`<dir>/<name>`), built for the session."""
    return build_tf_test_models(tmp_path_factory.mktemp("tf-test-models"))


def tf_test_sources(models_dir: Path) -> list[ModelSource]:
    """TF_TEST_MODELS in `models_dir`, plus TF_SERVING_EXPORTS when ../shared is there."""
    sources = [
        ModelSource(name, str(models_dir / name), policy, labels)
        for name, (policy, labels) in TF_TEST_MODELS.items()
    ]
    if HAS_TFSERVING_TESTDATA:
        sources += [
            ModelSource(name, str(TFSERVING_TESTDATA / folder), policy, labels)
            for name, (folder, policy, labels) in TF_SERVING_EXPORTS.items()
        ]
    return sources


@pytest.fixture(scope="session")
def compat_backend(tf_test_models: Path) -> Iterator[EmbeddedTfServing]:
    """`python -m tfserving_compat` in its own process, serving `tf_test_sources`."""
    server = EmbeddedTfServing(tf_test_sources(tf_test_models), poll_seconds=0)
    server.start()
    try:
        if not asyncio.run(server.wait_until_listening(180)):
            pytest.fail("the TF-Serving-compatible backend did not start within 180 s")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sklearn_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scikit-learn example models, trained for this test session."""
    from examples.sklearn_models import build_diabetes_regressor, build_iris

    models_dir = tmp_path_factory.mktemp("sklearn-models")
    build_iris(models_dir)
    build_diabetes_regressor(models_dir)
    return models_dir


@pytest.fixture(scope="session")
def example_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every example model, built by the project's own builder for this test session."""
    from examples.build import build_all

    models_dir = tmp_path_factory.mktemp("example-models")
    build_all(models_dir)
    return models_dir


def example_config(models_dir: Path) -> dict[str, Any]:
    """examples/config.yaml as parsed YAML, its models' base paths pointing at `models_dir`
    (a pipeline has none: its steps are the other models)."""
    config: dict[str, Any] = yaml.safe_load((REPO / "examples" / "config.yaml").read_text())
    for model in config["models"]:
        if model["platform"] != "pipeline":
            model["base_path"] = str(models_dir / model["name"])
    return config


def sklearn_model_configs(models_dir: Path) -> list[ModelConfig]:
    """Config entries for the scikit-learn example models in `models_dir`."""
    return [
        ModelConfig(name="iris", platform="sklearn", base_path=str(models_dir / "iris")),
        ModelConfig(name="diabetes", platform="sklearn", base_path=str(models_dir / "diabetes")),
    ]


@pytest.fixture(scope="session")
def gateway_settings(
    compat_backend: EmbeddedTfServing, tf_test_models: Path, sklearn_models_dir: Path
) -> Settings:
    """The gateway in front of the separate backend process, plus in-process sklearn models."""
    tf_models = [
        ModelConfig(name=source.name, platform="tensorflow", base_path=source.base_path)
        for source in tf_test_sources(tf_test_models)
    ]
    return Settings(
        tf_serving_target=compat_backend.target,
        metadata_ttl_seconds=0,
        models=tf_models + sklearn_model_configs(sklearn_models_dir),
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(gateway_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the gateway app (lifespan run, backends started)."""
    async with gateway_client(gateway_settings) as http:
        yield http


def gateway_client(settings: Settings) -> _GatewayClient:
    """`async with gateway_client(settings) as http:` runs the app's lifespan around `http`."""
    return _GatewayClient(settings)


class _GatewayClient:
    def __init__(self, settings: Settings) -> None:
        self._app = create_app(settings)
        self._lifespan = self._app.router.lifespan_context(self._app)
        self._http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self._app), base_url="http://gateway"
        )

    async def __aenter__(self) -> httpx.AsyncClient:
        await self._lifespan.__aenter__()
        return self._http

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()
        await self._lifespan.__aexit__(None, None, None)


StartSklearn = Callable[..., Awaitable[SklearnBackend]]


@pytest.fixture
async def start_sklearn() -> AsyncIterator[StartSklearn]:
    """`await start_sklearn(ModelSource(...), ..., **options)`: a started SklearnBackend
    (`options` as its constructor takes them), closed after the test."""
    backends: list[SklearnBackend] = []

    async def _start(*sources: ModelSource, **options: Any) -> SklearnBackend:
        backend = SklearnBackend(list(sources), **options)
        backends.append(backend)
        await backend.start()
        return backend

    yield _start
    for backend in backends:
        await backend.close()


@dataclass(frozen=True)
class GatewayProcess:
    """A `python -m gateway serve` child process."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def spawn_gateway(config: Mapping[str, Any], workdir: Path) -> Iterator[GatewayProcess]:
    """Start `python -m gateway serve` on `config` (written to `workdir`/config.yaml; no
    GATEWAY_* variable from this environment) on a free port, its output in
    `workdir`/gateway.log; terminate it afterwards. It is not waited for: use
    `wait_until_ready`."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(dict(config)))
    port = free_port()
    log = workdir / "gateway.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    command = [sys.executable, "-m", "gateway", "serve", "--config", "config.yaml"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    try:
        yield GatewayProcess(f"http://127.0.0.1:{port}", port, process, log)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(60)


def wait_until_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, within: float = 240
) -> None:
    """Poll `url`/readyz until it answers 200; fail with the log's tail if `process`
    exits first or `within` seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gateway exited early:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"gateway not ready within {within} s:\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """What the "gateway.access" logger writes, formatted as JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    access = logging.getLogger("gateway.access")
    old_level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)


@pytest.fixture(scope="session")
def v2_gateway(
    compat_backend: EmbeddedTfServing,
    tf_test_models: Path,
    sklearn_models_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    """The gateway the Open Inference Protocol tests share (tests/v2_gateway.py)."""
    from tests.v2_gateway import running_v2_gateway  # it imports this module

    workdir = tmp_path_factory.mktemp("v2-gateway")
    with running_v2_gateway(compat_backend, tf_test_models, sklearn_models_dir, workdir) as gw:
        yield gw


@pytest.fixture(scope="session")
def v2_http(v2_gateway: GatewayProcess) -> Iterator[httpx.Client]:
    """An HTTP client for `v2_gateway`."""
    with httpx.Client(base_url=v2_gateway.url, timeout=30) as client:
        yield client
