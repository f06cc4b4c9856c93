"""The command line: single-model flags, polling, startup failures, usage errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tests.compat.conftest import REPO, Servers
from tests.compat.helpers import predict_request

State = get_model_status_pb2.ModelVersionStatus.State


def _status(channel: grpc.Channel, name: str) -> list[tuple[int, str]]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    return [(s.version, State.Name(s.state)) for s in response.model_version_status]


def test_single_model_flags_and_polling(servers: Servers) -> None:
    with grpc.insecure_channel(servers.single.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(predict_request("polled", [[2.0]]), timeout=30)
        assert response.model_spec.version.value == 123
        assert tf.make_ndarray(response.outputs["y"]).tolist() == [[3.0]]

        # a broken new version: the serving one stays
        (servers.single_base / "00000200").mkdir()
        deadline = time.monotonic() + 30
        while (200, "END") not in _status(channel, "polled") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _status(channel, "polled") == [(200, "END"), (123, "AVAILABLE")]
        shutil.rmtree(servers.single_base / "00000200")

        # a good new version: loaded, then the old one unloaded (policy: latest 1)
        shutil.copytree(servers.models / "two_versions" / "124", servers.single_base / "00000124")
        deadline = time.monotonic() + 30
        while (123, "END") not in _status(channel, "polled") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _status(channel, "polled") == [(200, "END"), (124, "AVAILABLE"), (123, "END")]
        response = stub.Predict(predict_request("polled", [[2.0]]), timeout=30)
        assert response.model_spec.version.value == 124


def test_label_on_unavailable_version_refuses_to_start(servers: Servers) -> None:
    process = servers.bad_label.process
    assert process.wait(timeout=120) != 0
    assert (
        "Failed to start server. Error: FAILED_PRECONDITION: Request to assign label to "
        "version 999 of model m, which is not currently available for inference"
    ) in servers.bad_label.log_text()


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tfserving_compat", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unknown_flag_is_a_usage_error() -> None:
    result = _run_cli("--model_base_path=/tmp/x", "--no_such_flag=1")
    assert result.returncode == 2
    assert "unrecognized arguments: --no_such_flag=1" in result.stderr


def test_no_model_is_a_usage_error() -> None:
    result = _run_cli("--port=8501")
    assert result.returncode == 2
    assert (
        "Both server_options.model_base_path and server_options.model_config_file are empty!"
    ) in result.stderr


def test_relative_base_path_is_rejected() -> None:
    result = _run_cli("--model_base_path=relative/path")
    assert result.returncode == 1
    assert (
        "Failed to start server. Error: INVALID_ARGUMENT: Expected model default to have an "
        "absolute path or URI; got base_path()=relative/path"
    ) in result.stderr


def test_exit_with_parent_leaves_no_orphan(tmp_path: Path, tf_test_models: Path) -> None:
    """With --exit_with_parent, a backend whose parent is SIGKILLed shuts itself down."""
    from clients.embedded import free_port

    launcher = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-m', 'tfserving_compat',\n"
        f"    '--port={free_port()}', '--model_name=half',\n"
        f"    '--model_base_path={tf_test_models / 'half_plus_two'}',\n"
        "    '--exit_with_parent'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", launcher], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = Path(f"/proc/{int(parent.stdout.readline())}")
    try:
        time.sleep(2)  # let the child get past its imports into the serving loop or loading
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 120  # hang detector: loading can take a while
        while child.exists() and "(python" in _state_line(child):
            assert time.monotonic() < deadline, "the backend outlived its killed parent"
            time.sleep(0.5)
    finally:
        if child.exists():
            subprocess.run(["kill", "-9", child.name], check=False)


def _state_line(proc: Path) -> str:
    try:
        return (proc / "stat").read_text()
    except OSError:
        return ""
