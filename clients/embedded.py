"""The embedded default: run our TF-Serving-compatible server as a child process.

With no external TF Serving configured, the gateway starts `python -m tfserving_compat`
on a loopback port with a TF Serving model config file it writes, and talks to it over
gRPC exactly as it would to `tensorflow_model_server`. Running it as a separate process
keeps TensorFlow's memory and threads out of the gateway process. A supervisor task
restarts the child, on the same port, whenever it dies; the gRPC client reconnects to
it by itself. The child logs JSON lines to a pipe that the gateway reads and logs again
through its own logging (clients/child_logs.py), with TensorFlow's C++ start-up notices
turned into DEBUG records.
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

from clients.child_logs import forward_child_logs
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
        restart_initial_backoff_seconds: float = 0.5,
        restart_max_backoff_seconds: float = 30.0,
        start_timeout_seconds: float = 180.0,
    ) -> None:
        self._models = list(models)
        self._host = host
        self._port = port or free_port(host)
        self._poll_seconds = poll_seconds
        self._restart_backoff = (restart_initial_backoff_seconds, restart_max_backoff_seconds)
        self._start_timeout = start_timeout_seconds
        self._process: subprocess.Popen[bytes] | None = None
        self._config_dir: tempfile.TemporaryDirectory[str] | None = None
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def target(self) -> str:
        """The gRPC address to give `TfServingBackend`."""
        return f"{self._host}:{self._port}"

    @property
    def pid(self) -> int | None:
        """The current child's process id (None before `start` and after `stop`)."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Write the model config and spawn the server; returns while it loads."""
        self._config_dir = tempfile.TemporaryDirectory(prefix="tfserving-compat-")
        config_file = Path(self._config_dir.name) / "models.config"
        config_file.write_text(model_config_text(self._models))
        self._spawn(config_file)

    def _spawn(self, config_file: Path) -> None:
        command = [
            sys.executable,
            "-m",
            "tfserving_compat",
            f"--host={self._host}",
            f"--port={self._port}",
            f"--model_config_file={config_file}",
            f"--file_system_poll_wait_seconds={self._poll_seconds:g}",
            "--exit_with_parent",
            "--log_format=json",
        ]
        logger.info("starting the embedded TF-Serving-compatible backend on %s", self.target)
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self._process.stderr is not None
        forward_child_logs(self._process.stderr, "tfserving_compat")

    def supervise(self, check_seconds: float = 0.5) -> None:
        """Restart the child whenever it dies, until `stop` (needs a running event loop).

        Restarts wait a backoff that doubles from the initial to the maximum and goes
        back to the initial once a restarted child listens again.
        """
        if self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(check_seconds)
            )

    async def _supervise(self, check_seconds: float) -> None:
        initial, maximum = self._restart_backoff
        backoff = initial
        while True:
            await asyncio.sleep(check_seconds)
            process, config_dir = self._process, self._config_dir
            if process is None or config_dir is None or process.poll() is None:
                continue
            logger.warning(
                "the embedded TF-Serving-compatible backend exited with code %s; "
                "restarting it in %.1f s",
                process.returncode,
                backoff,
            )
            await asyncio.sleep(backoff)
            if self._process is not process:  # stopped (or restarted by hand) meanwhile
                continue
            backoff = min(backoff * 2, maximum)
            try:
                self._spawn(Path(config_dir.name) / "models.config")
            except OSError:
                logger.exception("could not restart the embedded backend")
                continue
            if await self.wait_until_listening(self._start_timeout):
                logger.info("the embedded backend is serving again on %s", self.target)
                backoff = initial

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
        """Stop supervising, terminate the child (SIGTERM, then SIGKILL after `timeout`)
        and remove its config."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            self._supervisor = None
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
