"""End to end: `gateway serve` as a real uvicorn server on its embedded default.

The gateway process starts the TF-Serving-compatible backend itself, as a child
process; every curl command in the README's "Try it" section must work verbatim
against it (only the port differs).
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, example_config, spawn_gateway, wait_until_ready

EXAMPLE_MODELS = ("half_plus_two", "digits", "iris", "diabetes")


@pytest.fixture(scope="module")
def gateway_process(
    example_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """A running `python -m gateway serve` on the example models: its URL, process and log."""
    config = example_config(example_models_dir)
    with spawn_gateway(config, tmp_path_factory.mktemp("e2e")) as gateway:
        wait_until_ready(gateway.url, gateway.process, gateway.log)
        yield gateway.url, gateway.process, gateway.log


@pytest.fixture(scope="module")
def gateway_url(gateway_process: tuple[str, subprocess.Popen[bytes], Path]) -> str:
    """The URL of the running gateway."""
    return gateway_process[0]


def readme_curl_commands() -> list[str]:
    """Every `curl ...` line inside the README's shell code blocks."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, flags=re.DOTALL)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip().startswith("curl ")
    ]


def test_readme_has_the_issue_examples() -> None:
    commands = readme_curl_commands()
    for needed in (
        "half_plus_two:predict",
        "iris:predict",
        "predict_proba",
        "localhost:8000/v1/models/iris",
        "half_plus_two/metadata",
    ):
        assert any(needed in command for command in commands), needed


@pytest.mark.parametrize("command", readme_curl_commands())
def test_readme_curl_example_works_verbatim(gateway_url: str, command: str) -> None:
    port = gateway_url.rsplit(":", 1)[1]
    argv = shlex.split(command.replace("localhost:8000", f"localhost:{port}"))
    result = subprocess.run(
        [*argv, "-sS", "-w", "\n%{http_code}"], capture_output=True, timeout=60, check=False
    )
    body, _, status = result.stdout.rpartition(b"\n")
    assert result.returncode == 0, result.stderr
    assert status == b"200", body
    assert "error" not in json.loads(body)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_head_answers_as_get_without_a_body(gateway_url: str, path: str) -> None:
    get, head = httpx.get(gateway_url + path), httpx.head(gateway_url + path)
    assert (head.status_code, get.status_code) == (200, 200)
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


def test_every_example_model_is_available(gateway_url: str) -> None:
    for name in EXAMPLE_MODELS:
        response = httpx.get(f"{gateway_url}/v1/models/{name}")
        assert response.status_code == 200
        states = [item["state"] for item in response.json()["model_version_status"]]
        assert "AVAILABLE" in states, (name, response.text)


def test_digits_classifier_predicts_a_digit(gateway_url: str) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = digits.data[:5].tolist()
    response = httpx.post(
        f"{gateway_url}/v1/models/digits:predict", json={"instances": rows}, timeout=30
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 5
    correct = sum(
        p["classes"] == int(t) for p, t in zip(predictions, digits.target[:5], strict=True)
    )
    assert correct >= 4


def test_startup_log_is_json_lines_without_tensorflow_noise(
    gateway_process: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    """Everything the gateway and its embedded backend logged is one JSON object a line;
    TensorFlow's C++ start-up notices (oneDNN, no CUDA driver, cuInit) are DEBUG records,
    so not written at the default level, and none is printed twice or as plain text."""
    text = gateway_process[2].read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(record, dict) for record in records), text
    loggers = {record["logger"] for record in records}
    assert {"uvicorn.error", "clients.embedded", "tfserving_compat.manager"} <= loggers
    assert not {"tfserving_compat.native", "tfserving_compat.stderr"} & loggers, text
    for noise in ("oneDNN", "cuInit", "cuda drivers", "absl", "cpu_feature_guard"):
        assert noise not in text
    backend = [r["message"] for r in records if r["logger"].startswith("tfserving_compat")]
    assert len(backend) == len(set(backend)), backend


def test_a_shape_misfit_is_explained_before_tensorflows_error(gateway_url: str) -> None:
    """3 pixels where digits declares [-1,64]: TensorFlow fails inside its graph; the
    gateway says first which input misfits, then passes TF Serving's message on."""
    response = httpx.post(
        f"{gateway_url}/v1/models/digits:predict", json={"instances": [[1.0, 2.0, 3.0]]}
    )
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    hint = (
        "Input shapes do not fit signature 'serving_default' of digits: 'pixels' is [1,3], "
        "declared [-1,64] (-1: any size). TF Serving's error: "
    )
    assert message.startswith(hint), message
    assert "{{node" in message  # TensorFlow's own text follows unchanged


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_sigterm_stops_the_gateway_and_its_embedded_backend(
    gateway_process: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    """Runs last in this module: SIGTERM ends the gateway, which stops the backend it started."""
    _, process, _ = gateway_process
    children = _children(process.pid)
    assert children, "the embedded backend should run as a child of the gateway"
    process.terminate()
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status shows it.
    assert process.wait(60) in (0, -signal.SIGTERM)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{child}").exists() for child in children):
        assert time.monotonic() < deadline, "the embedded backend outlived the gateway"
        time.sleep(0.2)
