"""Real `python -m gateway serve` processes: the SIGTERM drain, `--workers`, and a flood.

Each test starts its own uvicorn server on a free port and talks HTTP to it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from clients.embedded import free_port
from tests.conftest import example_config, wait_until_ready

ROWS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def _write_config(workdir: Path, models_dir: Path, names: tuple[str, ...]) -> Path:
    """The example config, for the models in `names`, pointing at `models_dir`."""
    config = example_config(models_dir)
    config["models"] = [model for model in config["models"] if model["name"] in names]
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Server:
    """A `gateway serve` child process with its URL and log."""

    def __init__(self, workdir: Path, config: Path, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "gateway.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        clean.pop("PROMETHEUS_MULTIPROC_DIR", None)
        command = [sys.executable, "-m", "gateway", "serve", "--config", str(config)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**clean, **env},
                cwd=workdir,
            )

    def wait_ready(self) -> None:
        wait_until_ready(self.url, self.process, self.log)

    def listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """`start(config, env, *args)` runs a server; every one is killed after the test."""
    servers: list[Server] = []

    def _start(config: Path, env: dict[str, str], *args: str) -> Server:
        servers.append(Server(tmp_path, config, env, *args))
        return servers[-1]

    yield _start
    for server in servers:
        server.stop()


def _descendants(pid: int, depth: int | None = None) -> dict[int, str]:
    """Every process under `pid` (down to `depth` generations), with its command line."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found: dict[int, str] = {}
    frontier = [(pid, 0)]
    while frontier:
        parent, level = frontier.pop()
        if depth is not None and level == depth:
            continue
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                try:
                    found[child] = Path(f"/proc/{child}/cmdline").read_bytes().decode()
                except OSError:
                    continue
                frontier.append((child, level + 1))
    return found


def _wait_gone(pids: list[int], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, f"still running: {pids}"
        time.sleep(0.2)


def test_sigterm_drains_then_finishes_in_flight_requests_and_exits_0(
    start: Any, sklearn_models_dir: Path, tmp_path: Path
) -> None:
    config = _write_config(tmp_path, sklearn_models_dir, ("iris",))
    server = start(config, {"GATEWAY_SHUTDOWN_DRAIN_SECONDS": "5"})
    server.wait_ready()
    sending, listener_closed = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        text = orjson.dumps(ROWS)
        sending.set()  # connected, headers sent
        yield text[:5]
        listener_closed.wait(60)  # the rest arrives only once the server stopped accepting
        yield text[5:]

    in_flight: dict[str, httpx.Response] = {}
    sender = threading.Thread(
        target=lambda: in_flight.update(
            response=httpx.post(
                f"{server.url}/v1/models/iris:predict",
                content=slow_body(),
                headers={"X-Request-Timeout": "60"},
                timeout=60,
            )
        )
    )
    sender.start()
    assert sending.wait(30)
    server.process.send_signal(signal.SIGTERM)

    # Draining: not ready, but still serving new connections.
    readyz = httpx.get(f"{server.url}/readyz", timeout=10)
    assert readyz.status_code == 503
    assert "shutting down" in readyz.json()["error"]
    predict = httpx.post(f"{server.url}/v1/models/iris:predict", json=ROWS, timeout=10)
    assert predict.status_code == 200, predict.text

    while server.listening():  # after the drain the listener closes...
        assert server.process.poll() is None, server.tail()
        time.sleep(0.1)
    listener_closed.set()
    sender.join(60)
    assert in_flight["response"].status_code == 200  # ...and the in-flight request finishes
    assert server.process.wait(60) == 0, server.tail()


def test_workers_share_one_embedded_backend_and_stop_together(
    start: Any, example_models_dir: Path, tmp_path: Path
) -> None:
    config = _write_config(tmp_path, example_models_dir, ("half_plus_two", "iris"))
    server = start(config, {"GATEWAY_WORKERS": "2"})
    server.wait_ready()
    processes = _descendants(server.process.pid)
    backends = [pid for pid, cmd in processes.items() if "tfserving_compat" in cmd]
    children = _descendants(server.process.pid, depth=1)
    workers = [pid for pid, cmd in children.items() if "spawn_main" in cmd]
    codec_workers = [
        pid for pid in processes if pid not in children and "spawn_main" in processes[pid]
    ]
    assert len(backends) == 1, (processes, server.tail())
    assert len(workers) == 2, (processes, server.tail())
    assert len(codec_workers) == 2 * 2, (processes, server.tail())  # codec_processes each
    environ = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
    (metrics_dir,) = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"PROMETHEUS_MULTI")]
    assert Path(metrics_dir.decode()).is_dir()

    for _ in range(6):  # several connections, so both workers get some
        with httpx.Client(base_url=server.url, timeout=30) as client:
            iris = client.post("/v1/models/iris:predict", json=ROWS)
            assert iris.status_code == 200, (iris.text, server.tail())
            tf = client.post("/v1/models/half_plus_two:predict", json={"instances": [1.0]})
            assert tf.status_code == 200, (tf.text, server.tail())
            assert tf.json() == {"predictions": [2.5]}

    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(60) == 0, server.tail()
    _wait_gone(list(processes))
    assert not Path(metrics_dir.decode()).exists()


async def _post_raw(port: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """One POST on a fresh connection with a bare asyncio client (httpx costs the flood
    more CPU than the server): status, headers, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /v1/models/iris:predict HTTP/1.1\r\nHost: gateway\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    response = await reader.read()  # until the server closes
    writer.close()
    header_block, _, content = response.partition(b"\r\n\r\n")
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, content


async def _flood(port: int, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    body = orjson.dumps(ROWS)
    return await asyncio.gather(*(_post_raw(port, body) for _ in range(count)))


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_flood_of_ten_times_capacity_is_shed_not_fatal(
    start: Any, sklearn_models_dir: Path, tmp_path: Path
) -> None:
    config = _write_config(tmp_path, sklearn_models_dir, ("iris",))
    env = {"GATEWAY_MAX_CONCURRENT_REQUESTS": "20"}
    server = start(config, env)
    server.wait_ready()
    asyncio.run(_flood(server.port, 500))  # warm up: the first flood allocates buffers
    rss_before = _rss_bytes(server.process.pid)

    statuses: dict[int, int] = {}
    for _ in range(3):
        for status, headers, content in asyncio.run(_flood(server.port, 500)):
            statuses[status] = statuses.get(status, 0) + 1
            if status != 200:
                assert status in (429, 503), content
                assert headers["retry-after"] == "1"
                assert "error" in orjson.loads(content)
    rss_after = _rss_bytes(server.process.pid)
    print(f"flood statuses {statuses}; RSS {rss_before >> 20} MB -> {rss_after >> 20} MB")

    assert statuses.get(200, 0) > 0
    assert rss_after - rss_before < 256 * 2**20
    assert server.process.poll() is None
    again = httpx.post(f"{server.url}/v1/models/iris:predict", json=ROWS, timeout=10)
    assert again.status_code == 200
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
