"""The Python client (client/, distribution tfs-gateway-client) against a running gateway.

The client is pip-installed into a fresh virtualenv (no system site packages) where
`import tensorflow` fails; tests/python_client_driver.py runs every call with it, sync and
async, against `python -m gateway serve` on the example models (plus `echo`, a string model
for b64) and against a small HTTP server of this test that answers 503/429 with
`Retry-After`, stalls, and records the headers it got. Expected values are computed here:
half_plus_two is y = 0.5x + 2, iris predicts the class index of known flowers, ...
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from clients.embedded import free_port
from tests.conftest import REPO, example_config, spawn_gateway, wait_until_ready

CLIENT_DIR = REPO / "client"
DRIVER = Path(__file__).with_name("python_client_driver.py")
# pip's words when it cannot reach the index: then the test is skipped, not failed.
OFFLINE_MARKERS = (
    "No matching distribution found",
    "Could not find a version that satisfies",
    "NewConnectionError",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "ConnectTimeoutError",
)


def _build_echo_model(models_dir: Path) -> Path:
    """`echo`: a TF2 SavedModel whose input `text` (DT_STRING) comes back as `text_bytes`
    (so base64 in the JSON) beside `length` (int32), to carry bytes both ways."""
    import tensorflow as tf

    class Echo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text: Any) -> dict[str, Any]:
            return {"text_bytes": tf.identity(text), "length": tf.strings.length(text)}

    module = Echo()
    target = models_dir / "echo" / "1"
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})
    return target.parent


@pytest.fixture(scope="module")
def gateway_started(
    example_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`python -m gateway serve` on the example models and `echo`, started (not yet ready:
    the virtualenv is made while the embedded TF backend loads)."""
    workdir = tmp_path_factory.mktemp("python-client")
    config = example_config(example_models_dir)
    echo = _build_echo_model(workdir / "models")
    config["models"].append({"name": "echo", "platform": "tensorflow", "base_path": str(echo)})
    with spawn_gateway(config, workdir) as gateway:
        yield gateway.url, gateway.process, gateway.log


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtualenv holding only the client and what pip resolves for
    it (httpx, numpy); skips when the package index cannot be reached."""
    root = tmp_path_factory.mktemp("client-venv")
    # Install from a copy, so that pip's build leaves nothing in the repository.
    source = root / "src"
    shutil.copytree(
        CLIENT_DIR,
        source,
        ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"),
    )
    venv = root / "venv"
    # CLIENT_TEST_PYTHON: another interpreter to make the venv with (say, a Python 3.10).
    base = os.environ.get("CLIENT_TEST_PYTHON", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if any(marker in output for marker in OFFLINE_MARKERS):
            reason = "the package index is unreachable, cannot install httpx and numpy"
            pytest.skip(f"{reason}:\n{output[-2000:]}")
        pytest.fail(f"pip install of client/ failed:\n{output[-4000:]}")
    return python


@dataclass
class FakeServer:
    """A real HTTP server on loopback that misbehaves on purpose, by model name:
    `flaky-*` 503 with `Retry-After: 1` twice, then 200; `busy-*` always 429 with
    `Retry-After: 1`; `later-*` 503 with `Retry-After: 120`; `slow-*` answers after 3 s;
    `deadline-*` answers a status at once. It records every request's path and headers."""

    url: str = ""
    requests: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, model: str) -> list[tuple[float, dict[str, str]]]:
        with self.lock:
            return [(t, h) for t, path, h in self.requests if f"/v1/models/{model}" in path]


def _fake_handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: object, retry_after: str | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Request-ID", self.headers.get("X-Request-ID", "none"))
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            if length:
                self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with fake.lock:
                fake.requests.append((time.monotonic(), self.path, headers))
                attempts = sum(1 for _, path, _ in fake.requests if path == self.path)
            model = self.path.split("/v1/models/", 1)[-1].split(":")[0].split("/")[0]
            kind = model.split("-")[0]
            if kind == "flaky" and attempts <= 2:
                self._answer(503, {"error": "The gateway is overloaded; retry later"}, "1")
            elif kind == "busy":
                self._answer(429, {"error": f"Too many requests for model {model}"}, "1")
            elif kind == "later":
                self._answer(503, {"error": "down for maintenance"}, "120")
            elif kind == "slow":
                time.sleep(3)
                self._answer(200, {"predictions": [2.5]})
            elif kind == "deadline":
                status = {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK"}}
                self._answer(200, {"model_version_status": [status]})
            else:
                self._answer(200, {"predictions": [2.5]})

        do_GET = _handle  # noqa: N815
        do_POST = _handle  # noqa: N815

    return Handler


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeServer]:
    fake = FakeServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _fake_handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Inputs:
    iris_rows: list[list[float]]
    iris_labels: list[int]
    iris_features: list[str]
    diabetes_row: list[float]
    digits_rows: list[list[float]]


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    from sklearn.datasets import load_diabetes, load_digits, load_iris

    iris = load_iris()
    picked = [0, 1, 50, 51, 100, 101]  # two known flowers of each class
    digits = load_digits()
    return Inputs(
        iris_rows=iris.data[picked].tolist(),
        iris_labels=[int(iris.target[i]) for i in picked],
        iris_features=["sepal_length", "sepal_width", "petal_length", "petal_width"],
        diabetes_row=load_diabetes().data[0].tolist(),
        digits_rows=digits.data[:4].tolist(),
    )


@dataclass(frozen=True)
class Run:
    gateway: str
    results: dict[str, Any]
    fake: FakeServer


@pytest.fixture(scope="module")
def run(
    gateway_started: tuple[str, subprocess.Popen[bytes], Path],
    client_python: Path,
    fake_server: FakeServer,
    inputs: Inputs,
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    """The driver's results: every client call, sync and async, once."""
    url, process, log = gateway_started
    wait_until_ready(url, process, log)
    workdir = tmp_path_factory.mktemp("python-client-run")
    plan = {
        "gateway": url,
        "fake": fake_server.url,
        "closed": f"http://127.0.0.1:{free_port()}",
        "iris_rows": inputs.iris_rows,
        "iris_features": inputs.iris_features,
        "diabetes_row": inputs.diabetes_row,
        "digits_rows": inputs.digits_rows,
    }
    (workdir / "plan.json").write_text(json.dumps(plan))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(
        [str(client_python), str(DRIVER), str(workdir / "plan.json")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=workdir,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return Run(url, json.loads(result.stdout), fake_server)


MODES = ("sync", "async")


def value(run: Run, mode: str, name: str) -> Any:
    entry = run.results[mode][name]
    assert "value" in entry, entry
    return entry["value"]


def array(run: Run, mode: str, name: str) -> tuple[Any, str, list[int]]:
    result = value(run, mode, name)
    return result["array"], result["dtype"], result["shape"]


def error(run: Run, mode: str, name: str) -> dict[str, Any]:
    entry = run.results[mode][name]
    assert "error" in entry, entry
    return entry


def half_plus_two(x: float) -> float:
    return 0.5 * x + 2


# --- the environment --------------------------------------------------------------------


def test_the_client_runs_without_tensorflow(run: Run, client_python: Path) -> None:
    assert run.results["tensorflow_importable"] is False
    assert run.results["modules"] == []  # no tensorflow, grpc or protobuf was imported
    assert run.results["version"] == "0.1.0"
    listing = subprocess.run(
        [str(client_python), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {item["name"].lower() for item in json.loads(listing.stdout)}
    assert {"tfs-gateway-client", "httpx", "numpy"} <= installed
    assert not {"tensorflow", "tensorflow-serving-api", "grpcio", "protobuf"} & installed
    assert not any(name.startswith("tensorflow") for name in installed), installed


# --- predict ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_predict_row_format(run: Run, mode: str) -> None:
    assert array(run, mode, "hpt_rows") == ([2.5, 3.0, 4.5], "float64", [3])
    assert array(run, mode, "hpt_rows_float32_array") == ([[2.5], [3.0], [0.0]], "float64", [3, 1])
    named, dtype, shape = array(run, mode, "hpt_rows_named")
    assert (named, dtype, shape) == ([half_plus_two(3.0), half_plus_two(7.0)], "float64", [2])
    assert array(run, mode, "hpt_version")[0] == [2.5]
    assert array(run, mode, "hpt_label")[0] == [2.5]
    nan, inf = array(run, mode, "hpt_nan")[0]
    assert math.isnan(nan) and inf == math.inf


@pytest.mark.parametrize("mode", MODES)
def test_predict_columnar_format(run: Run, mode: str) -> None:
    assert array(run, mode, "hpt_columnar") == ([[2.5], [3.0]], "float64", [2, 1])
    assert array(run, mode, "hpt_columnar_plain") == ([7.0], "float64", [1])


@pytest.mark.parametrize("mode", MODES)
def test_predict_several_outputs_come_back_by_name(run: Run, mode: str) -> None:
    outputs = value(run, mode, "digits")
    assert set(outputs) == {"probabilities", "classes"}
    probabilities = outputs["probabilities"]
    classes = outputs["classes"]
    assert (probabilities["dtype"], probabilities["shape"]) == ("float64", [4, 10])
    assert (classes["dtype"], classes["shape"]) == ("int64", [4])
    for row, label in zip(probabilities["array"], classes["array"], strict=True):
        assert abs(sum(row) - 1) < 1e-4
        assert row.index(max(row)) == label


@pytest.mark.parametrize("mode", MODES)
def test_sklearn_models(run: Run, mode: str, inputs: Inputs) -> None:
    labels, dtype, _ = array(run, mode, "iris_predict")
    assert dtype == "int64"
    assert labels == inputs.iris_labels
    proba, _, shape = array(run, mode, "iris_proba")
    assert shape == [len(inputs.iris_rows), 3]
    assert [row.index(max(row)) for row in proba] == inputs.iris_labels
    assert all(abs(sum(row) - 1) < 1e-9 for row in proba)
    classified = value(run, mode, "iris_classify")
    assert classified["labels"]["array"] == [["0", "1", "2"]] * len(inputs.iris_rows)
    scores = classified["scores"]["array"]
    assert [row.index(max(row)) for row in scores] == inputs.iris_labels
    regressed, dtype, shape = array(run, mode, "diabetes_regress")
    predicted = array(run, mode, "diabetes_predict")[0]
    assert (dtype, shape) == ("float64", [1])
    assert math.isclose(regressed[0], predicted[0], rel_tol=1e-6)
    metadata = value(run, mode, "iris_metadata")
    assert metadata["signatures"]["predict"]["inputs"]["inputs"] == ["DT_DOUBLE", [-1, 4]]
    assert {"predict", "predict_proba"} <= set(metadata["signatures"])


@pytest.mark.parametrize("mode", MODES)
def test_bytes_go_as_b64_and_come_back_as_bytes(run: Run, mode: str) -> None:
    sent = [b"\x00\xff binary", b"abc", b"text"]
    outputs = value(run, mode, "echo_rows")
    echoed = outputs["text_bytes"]
    assert (echoed["dtype"], echoed["shape"]) == ("object", [3])
    assert [base64.b64decode(item["bytes"]) for item in echoed["array"]] == sent
    assert outputs["length"]["array"] == [len(item) for item in sent]
    columnar = value(run, mode, "echo_columnar")
    assert [base64.b64decode(item["bytes"]) for item in columnar["text_bytes"]["array"]] == [
        b"\x80\x81",
        b"",
    ]


def test_async_calls_run_concurrently(run: Run) -> None:
    gathered = run.results["async"]["gathered"]
    assert [item["array"] for item in gathered[:20]] == [[half_plus_two(x)] for x in range(20)]


# --- classify, regress, status, metadata, list --------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_classify_and_regress(run: Run, mode: str) -> None:
    classified = value(run, mode, "hpt_classify")
    assert classified["labels"]["array"] == [[""], [""]]
    assert classified["scores"] == {"array": [[3.0], [12.0]], "dtype": "float64", "shape": [2, 1]}
    assert array(run, mode, "hpt_regress") == ([42.0, 2.0], "float64", [2])


@pytest.mark.parametrize("mode", MODES)
def test_status_and_metadata(run: Run, mode: str) -> None:
    expected = [{"version": 1, "state": "AVAILABLE", "error_code": "OK", "error_message": ""}]
    assert value(run, mode, "hpt_status") == expected
    assert value(run, mode, "hpt_status_version") == expected
    metadata = value(run, mode, "hpt_metadata")
    assert (metadata["name"], metadata["version"]) == ("half_plus_two", 1)
    default = metadata["signatures"]["serving_default"]
    assert default == {
        "method_name": "tensorflow/serving/predict",
        "inputs": {"x": ["DT_FLOAT", [-1, 1]]},
        "outputs": {"y": ["DT_FLOAT", [-1, 1]]},
    }
    assert metadata["signatures"]["classify_x_to_y"]["inputs"]["inputs"] == ["DT_STRING", None]
    assert value(run, mode, "hpt_metadata_label")["version"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_v2_infer(run: Run, mode: str, inputs: Inputs) -> None:
    """The Open Inference Protocol's infer: arrays of their v2 datatype and shape."""
    assert value(run, mode, "v2_hpt")["y"] == {
        "array": [[2.5], [3.0]],
        "dtype": "float32",
        "shape": [2, 1],
    }
    assert value(run, mode, "v2_hpt_label")["y"]["array"] == [[2.5]]
    proba = value(run, mode, "v2_iris_proba")["predict_proba"]
    assert (proba["dtype"], proba["shape"]) == ("float64", [len(inputs.iris_labels), 3])
    labels = [row.index(max(row)) for row in proba["array"]]
    assert labels == inputs.iris_labels
    failure = error(run, mode, "v2_unknown_model")
    assert (failure["error"], failure["status"]) == ("NotFound", 404)


@pytest.mark.parametrize("mode", MODES)
def test_list_models(run: Run, mode: str) -> None:
    entry = run.results[mode]["list_models"]
    if "error" in entry and entry["status"] in (400, 404):
        pytest.skip(
            f"this gateway does not list models yet: GET /v1/models answers {entry['status']} "
            f"{entry['message']!r} (list_models() expects KServe V1's {{'models': [...]}})"
        )
    examples = yaml.safe_load((REPO / "examples" / "config.yaml").read_text())["models"]
    assert sorted(entry["value"]) == sorted([model["name"] for model in examples] + ["echo"])


# --- errors, request ids, deadlines ---------------------------------------------------------


# (driver result, the same request sent here, the exception expected, its status)
HPT = "/v1/models/half_plus_two"
ERROR_CASES: list[tuple[str, str, str, Any, str, int]] = [
    ("unknown_model", "POST", "/v1/models/nope:predict", {"instances": [1.0]}, "NotFound", 404),
    ("unknown_model_status", "GET", "/v1/models/nope", None, "NotFound", 404),
    ("wrong_type", "POST", f"{HPT}:predict", {"instances": ["a"]}, "InvalidArgument", 400),
    ("unknown_label", "GET", f"{HPT}/labels/nolabel/metadata", None, "InvalidArgument", 400),
]


@pytest.mark.parametrize("mode", MODES)
def test_errors_are_typed_with_the_servers_message(run: Run, mode: str) -> None:
    for name, method, path, body, cls, status in ERROR_CASES:
        raised = error(run, mode, name)
        answer = httpx.request(method, run.gateway + path, json=body, timeout=30)
        assert answer.status_code == status
        assert (raised["error"], raised["status"]) == (cls, status), raised
        assert raised["message"] == answer.json()["error"], name
        assert raised["is_gateway_error"]
    assert (
        error(run, mode, "unknown_model")["message"]
        == "Servable not found for request: Latest(nope)"
    )
    unknown_signature = error(run, mode, "unknown_signature")
    assert unknown_signature["error"] == "InvalidArgument"
    assert "nope" in unknown_signature["message"]


@pytest.mark.parametrize("mode", MODES)
def test_connection_refused_is_connection_failed(run: Run, mode: str) -> None:
    raised = error(run, mode, "connection_refused")
    assert raised["error"] == "ConnectionFailed" and raised["status"] is None
    assert "cannot reach" in raised["message"]


def test_request_id_round_trip(run: Run) -> None:
    # The gateway echoes the id the client sent: on an error (read from X-Request-ID) ...
    for mode in MODES:
        assert error(run, mode, "unknown_model")["request_id"] == "client-test-id-1"
    # ... and on success, seen by an httpx event hook of a client passed in.
    sent_given, echoed_given = run.results["sync"]["request_id_seen"][0]
    sent_generated, echoed_generated = run.results["sync"]["request_id_seen"][1]
    assert sent_given == echoed_given == "client-test-id-2"
    assert sent_generated == echoed_generated
    assert len(sent_generated) == 32 and int(sent_generated, 16) >= 0


@pytest.mark.parametrize("mode", MODES)
def test_deadline_is_sent_as_x_request_timeout(run: Run, mode: str) -> None:
    assert "value" in run.results[mode]["fake_deadline"]
    [(_, headers)] = run.fake.seen(f"deadline-{mode}")
    assert 2.0 < float(headers["x-request-timeout"]) <= 2.5
    assert len(headers["x-request-id"]) == 32
    assert headers["user-agent"].startswith("tfs-gateway-client/")


@pytest.mark.parametrize("mode", MODES)
def test_the_client_gives_up_at_its_deadline(run: Run, mode: str) -> None:
    raised = error(run, mode, "fake_slow")
    assert (raised["error"], raised["status"]) == ("DeadlineExceeded", None)
    # 0.5 s deadline plus 1 s for the server's own 504, not the 3 s the server takes.
    assert 0.5 <= raised["elapsed"] < 2.8
    [(_, headers)] = run.fake.seen(f"slow-{mode}")
    assert 0 < float(headers["x-request-timeout"]) <= 0.5


# --- retries on 429 and 503 -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_503_is_retried_after_retry_after(run: Run, mode: str) -> None:
    result = run.results[mode]["fake_flaky"]
    assert result["value"] == {"array": [2.5], "dtype": "float64", "shape": [1]}
    attempts = run.fake.seen(f"flaky-{mode}")
    assert len(attempts) == 3
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(attempts)]
    assert all(gap >= 0.95 for gap in gaps), gaps  # Retry-After: 1, never earlier
    assert result["elapsed"] >= 1.9
    # One request id for all the attempts; each carries the time left of the one deadline.
    assert len({h["x-request-id"] for _, h in attempts}) == 1
    budgets = [float(h["x-request-timeout"]) for _, h in attempts]
    assert budgets == sorted(budgets, reverse=True) and budgets[0] <= 20
    assert budgets[0] - budgets[-1] >= 1.9


@pytest.mark.parametrize("mode", MODES)
def test_429_retries_are_bounded(run: Run, mode: str) -> None:
    raised = error(run, mode, "fake_busy")
    assert (raised["error"], raised["status"]) == ("ResourceExhausted", 429)
    assert raised["message"] == f"Too many requests for model busy-{mode}"
    assert raised["retry_after"] == 1
    assert len(run.fake.seen(f"busy-{mode}")) == 2  # RetryPolicy(max_retries=1)
    assert raised["elapsed"] >= 0.95


@pytest.mark.parametrize("mode", MODES)
def test_a_retry_after_beyond_max_wait_is_not_waited_for(run: Run, mode: str) -> None:
    raised = error(run, mode, "fake_later")
    assert (raised["error"], raised["status"], raised["retry_after"]) == ("Unavailable", 503, 120)
    assert raised["message"] == "down for maintenance"
    assert len(run.fake.seen(f"later-{mode}")) == 1
    assert raised["elapsed"] < 1


# --- the client's own code: no venv needed ------------------------------------------------------


@pytest.fixture
def client_src(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(CLIENT_DIR / "src"))


def test_retry_after_parsing(client_src: None) -> None:
    from email.utils import formatdate

    from tfs_gateway_client._retry import RetryPolicy, parse_retry_after

    now = time.time()
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    for bad in (None, "", "-1", "soon", "nan", "inf"):
        assert parse_retry_after(bad) is None, bad
    policy = RetryPolicy(max_retries=2, max_wait=5, backoff=0.2)
    assert policy.wait_before_retry(1, 503, 1.0, None) == 1.0
    assert policy.wait_before_retry(3, 503, 1.0, None) is None  # retries are bounded
    assert policy.wait_before_retry(1, 500, 1.0, None) is None  # only 429 and 503
    assert policy.wait_before_retry(1, 429, 6.0, None) is None  # beyond max_wait
    assert policy.wait_before_retry(1, 429, 1.0, 0.5) is None  # beyond the deadline
    wait = policy.wait_before_retry(2, 503, None, None)  # no Retry-After: backoff
    assert wait is not None and 0.2 <= wait <= 0.4


def test_json_encoding_of_arrays_and_bytes(client_src: None) -> None:
    import numpy as np
    from tfs_gateway_client import _json

    assert _json.encode_instances(np.array([[1, 2], [3, 4]], np.int32)) == [[1, 2], [3, 4]]
    assert _json.encode_instances({"a": [1.0, 2.0], "b": np.array([b"x", b"y"])}) == [
        {"a": 1.0, "b": {"b64": "eA=="}},
        {"a": 2.0, "b": {"b64": "eQ=="}},
    ]
    with pytest.raises(ValueError, match="same number of rows"):
        _json.encode_instances({"a": [1.0], "b": [1.0, 2.0]})
    assert _json.encode_inputs(np.array(b"\xff")) == {"b64": "/w=="}
    assert _json.encode_value(np.array(["a", "b"])) == ["a", "b"]
    assert _json.dumps({"x": [float("nan"), float("-inf")]}) == b'{"x":[NaN,-Infinity]}'
    decoded = _json.decode_tensor([[{"b64": "/w=="}], [{"b64": ""}]])
    assert decoded.dtype == object and decoded.shape == (2, 1) and decoded[0, 0] == b"\xff"
    assert _json.decode_tensor([[1, 2]]).dtype == np.int64
    assert _json.decode_tensor([1, 2.5]).dtype == np.float64
    assert _json.decode_tensor(3.0).shape == ()
    assert _json.decode_tensor([]).shape == (0,)


def test_client_code_is_ruff_and_mypy_strict_clean() -> None:
    for command in (
        ["ruff", "check", "client", "tests/test_python_client.py", str(DRIVER)],
        ["ruff", "format", "--check", "client", "tests/test_python_client.py", str(DRIVER)],
        ["mypy", "--strict", "client/src"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
