"""Fixtures: real `python -m tfserving_compat` processes over the TF test models (our own
stand-ins for TF Serving's, tests/conftest.py TF_TEST_MODELS; TF Serving's own exports beside
them when ../shared is there).

All server processes of the session start at once (TensorFlow's import dominates their
startup), and tests talk to them over real gRPC.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.conftest import HAS_TFSERVING_TESTDATA, TFSERVING_TESTDATA
from tests.conftest import REPO as REPO

TESTDATA = TFSERVING_TESTDATA

STARTUP_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server subprocess, its port and its log file."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(args: list[str], log: Path, port: int | None = None) -> Server:
    """Starts `python -m tfserving_compat ARGS` with its output in `log`."""
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "tfserving_compat",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        *args,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    return Server(process, port, log)


def wait_ready(server: Server) -> None:
    """Waits (bounded) until the server accepts gRPC connections."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with grpc.insecure_channel(server.address) as channel:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(
                    f"server exited with {server.process.returncode}:\n{server.log_text()[-3000:]}"
                )
            try:
                grpc.channel_ready_future(channel).result(timeout=1.0)
                return
            except grpc.FutureTimeoutError:
                continue
    pytest.fail(f"server not ready after {STARTUP_TIMEOUT_S}s:\n{server.log_text()[-3000:]}")


def stop_server(server: Server) -> None:
    """SIGTERM, then SIGKILL if it does not exit."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def model_config_text(models: Path) -> str:
    """The session's ModelServerConfig: every TF test model in `models` (one of them broken),
    and TF Serving's TF2 export when ../shared is there."""

    def entry(name: str, base: Path, extra: str = "") -> str:
        return (
            f'  config {{ name: "{name}" base_path: "{base}" '
            f'model_platform: "tensorflow" {extra}}}\n'
        )

    labels = (
        "model_version_policy { all {} } "
        'version_labels { key: "stable" value: 123 } '
        'version_labels { key: "canary" value: 124 } '
    )
    fidelity = (
        entry("half_plus_two_tf2", TESTDATA / "saved_model_half_plus_two_tf2_cpu")
        + entry("tfs_half_plus_two", TESTDATA / "saved_model_half_plus_two_cpu")
        + entry("tfs_two_versions", TESTDATA / "saved_model_half_plus_two_2_versions", labels)
        if HAS_TFSERVING_TESTDATA
        else ""
    )
    return (
        "model_config_list {\n"
        + entry("half_plus_two", models / "half_plus_two")
        + entry("two_versions", models / "two_versions", labels)
        + entry("bad_half_plus_two", models / "bad_half_plus_two")
        + entry("half_plus_three", models / "half_plus_three")
        + fidelity
        + "}\n"
    )


@dataclass
class Servers:
    """The servers of the session."""

    main: Server
    single: Server  # --model_name/--model_base_path on a polled copy of a model
    single_base: Path
    bad_label: Server  # a label on a version that never loads: must refuse to start
    models: Path  # the TF test models (tests/conftest.py tf_test_models)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory, tf_test_models: Path) -> Iterator[Servers]:
    """Starts every server at once; stops them at the end of the session."""
    work = tmp_path_factory.mktemp("compat")
    config = work / "models.config"
    config.write_text(model_config_text(tf_test_models))
    bad_label_config = work / "bad_label.config"
    three = tf_test_models / "half_plus_three"
    bad_label_config.write_text(
        f'model_config_list {{ config {{ name: "m" base_path: "{three}" '
        'model_platform: "tensorflow" version_labels { key: "gone" value: 999 } } }\n'
    )
    single_base = work / "polled"
    single_base.mkdir()
    shutil.copytree(tf_test_models / "two_versions" / "123", single_base / "00000123")

    main = start_server(
        ["--model_config_file", str(config), "--file_system_poll_wait_seconds", "0"],
        work / "main.log",
    )
    single = start_server(
        [
            "--model_name",
            "polled",
            "--model_base_path",
            str(single_base),
            "--file_system_poll_wait_seconds",
            "1",
        ],
        work / "single.log",
    )
    bad_label = start_server(["--model_config_file", str(bad_label_config)], work / "bad_label.log")
    started = [main, single, bad_label]
    try:
        wait_ready(main)
        wait_ready(single)
        yield Servers(main, single, single_base, bad_label, tf_test_models)
    finally:
        for server in started:
            stop_server(server)


@pytest.fixture(scope="session")
def stub(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    """A PredictionService stub on the main server."""
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="session")
def channel(servers: Servers) -> Iterator[grpc.Channel]:
    """A channel to the main server."""
    with grpc.insecure_channel(servers.main.address) as chan:
        yield chan
