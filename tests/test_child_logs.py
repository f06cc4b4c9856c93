"""A TensorFlow child's stderr, logged again by the gateway (clients/child_logs.py)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from clients import child_logs
from tests.conftest import REPO

STDERR = b"""\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796186803.356836    6974 port.cc:153] oneDNN custom operations are on.
I0000 00:00:1796186803.357242    6974 cudart_stub.cc:31] Could not find cuda drivers on your \
machine, GPU will not be used.
I0000 00:00:1796186803.982776   22886 cpu_feature_guard.cc:227] This TensorFlow binary is \
optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow.
{"time": "2026-12-02 04:50:28,246", "level": "INFO", "logger": "tfserving_compat", \
"message": "Adding model h from /models/h"}
E0000 00:00:1796186806.707495    6974 cuda_platform.cc:52] failed call to cuInit: INTERNAL: \
CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
W0000 00:00:1796186806.707495    6974 loader.cc:9] something worth a look
{"level": "ERROR", "logger": "tfserving_compat.manager", "message": "boom", \
"exc_info": "Traceback (most recent call last):\\n  ValueError: x"}
a stray print
{not json

"""


def _records(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, driver: Path
) -> list[tuple[str, str, str]]:
    """What the forwarder logs of STDERR, on a machine whose NVIDIA driver file is `driver`."""
    monkeypatch.setattr(child_logs, "_NVIDIA_DRIVER", driver)
    with caplog.at_level(logging.DEBUG):
        child_logs.forward_child_logs(io.BytesIO(STDERR), "child").join(10)
    return [(r.name, r.levelname, r.getMessage()) for r in caplog.records]


def test_child_lines_become_records_and_tf_notices_debug(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    records = _records(caplog, monkeypatch, tmp_path / "no-driver")
    above_debug = [r for r in records if r[1] != "DEBUG"]
    assert above_debug == [
        ("tfserving_compat", "INFO", "Adding model h from /models/h"),
        ("child.native", "WARNING", "loader.cc:9: something worth a look"),
        (
            "tfserving_compat.manager",
            "ERROR",
            "boom\nTraceback (most recent call last):\n  ValueError: x",
        ),
        ("child.stderr", "WARNING", "a stray print"),
        ("child.stderr", "WARNING", "{not json"),
    ]
    debug = [message for _, level, message in records if level == "DEBUG"]
    assert len(debug) == 6  # the banner, 3 notices, the notice's second line, cuInit
    assert debug[4].startswith("To enable the following instructions")
    assert "failed call to cuInit" in debug[5]


def test_cuinit_failure_is_an_error_where_there_is_a_gpu_driver(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "version").write_text("NVRM version: 550.0\n")
    records = _records(caplog, monkeypatch, tmp_path / "version")
    [cuinit] = [r for r in records if "cuInit" in r[2]]
    assert cuinit[:2] == ("child.native", "ERROR")


def test_compat_server_logs_json_lines() -> None:
    """`tfserving_compat --log_format=json`: a startup failure is one JSON record, no text."""
    result = subprocess.run(
        [sys.executable, "-m", "tfserving_compat", "--log_format=json", "--model_base_path=rel"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    [line] = [json.loads(line) for line in result.stderr.splitlines()]
    assert line["level"] == "ERROR" and line["logger"] == "tfserving_compat"
    assert line["message"].startswith("Failed to start server. Error: INVALID_ARGUMENT")
    assert set(line) == {"time", "level", "logger", "message"}
