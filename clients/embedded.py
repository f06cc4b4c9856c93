"""The embedded default: run our TF-Serving-compatible server as a child process.

With no external TF Serving configured, the gateway starts `python -m tfserving_compat`
on a loopback port with a TF Serving model config file it writes, and talks to it over
gRPC exactly as it would to `tensorflow_model_server`. Running it as a separate process
keeps TensorFlow's memory and threads out of the gateway process.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from clients.types import ModelSource, VersionPolicy

logger = logging.getLogger(__name__)


def model_config_text(models: Sequence[ModelSource]) -> str:
    """Render TF Serving's ModelServerConfig text format for `models`."""
    lines = ["model_config_list {"]
    for model in models:
        lines += [
            "  config {",
            f"    name: {_quote(model.name)}",
            f"    base_path: {_quote(str(Path(model.base_path).resolve()))}",
            '    model_platform: "tensorflow"',
            f"    model_version_policy {{ {_policy_text(model.version_policy)} }}",
        ]
        lines += [
            f"    version_labels {{ key: {_quote(label)} value: {version} }}"
            for label, version in model.version_labels.items()
        ]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _policy_text(policy: VersionPolicy) -> str:
    if policy.kind == "all":
        return "all {}"
    if policy.kind == "specific":
        versions = " ".join(f"versions: {version}" for version in policy.versions)
        return f"specific {{ {versions} }}"
    return f"latest {{ num_versions: {policy.num_versions} }}"


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedTfServing:
    """Owns one `tfserving_compat` child process serving `models` on loopback."""

    def __init__(
        self,
        models: Sequence[ModelSource],
        *,
        port: int = 0,
        poll_seconds: float = 1.0,
        host: str = "127.0.0.1",
    ) -> None:
        self._models = list(models)
        self._host = host
        self._port = port or free_port(host)
        self._poll_seconds = poll_seconds
        self._process: subprocess.Popen[bytes] | None = None
        self._config_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def target(self) -> str:
        """The gRPC address to give `TfServingBackend`."""
        return f"{self._host}:{self._port}"

    def start(self) -> None:
        """Write the model config and spawn the server; returns while it loads."""
        self._config_dir = tempfile.TemporaryDirectory(prefix="tfserving-compat-")
        config_file = Path(self._config_dir.name) / "models.config"
        config_file.write_text(model_config_text(self._models))
        command = [
            sys.executable,
            "-m",
            "tfserving_compat",
            f"--host={self._host}",
            f"--port={self._port}",
            f"--model_config_file={config_file}",
            f"--file_system_poll_wait_seconds={self._poll_seconds:g}",
        ]
        logger.info("starting the embedded TF-Serving-compatible backend on %s", self.target)
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    async def wait_until_listening(self, within_seconds: float) -> bool:
        """Wait until the server accepts connections (it opens its port after loading models)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_seconds
        while loop.time() < deadline and self.running():
            try:
                _, writer = await asyncio.open_connection(self._host, self._port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            writer.close()
            await writer.wait_closed()
            return True
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after `timeout`) and remove its config."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._config_dir is not None:
            self._config_dir.cleanup()
            self._config_dir = None
