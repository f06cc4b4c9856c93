"""Hostile connections against a real gateway process, over real sockets (docs/faults.md).

Idle connections, headers sent a byte at a time, oversized heads and URLs, garbage
request lines, and more connections than the cap: each is closed or refused within its
limit with a JSON answer, while normal requests keep being served (or at worst refused
at once). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import spawn_gateway, wait_until_ready

HEADER_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 1.0
MAX_CONNECTIONS = 300
MAX_HEADER_BYTES = 8192
SLACK = 1.5  # scheduling slack on a busy 2-core machine
PREDICT = "/v1/models/iris:predict"
BODY = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.fixture(scope="module")
def gateway(
    sklearn_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """`python -m gateway serve` with tight connection limits: its URL and port."""
    config = {
        "header_timeout_seconds": HEADER_TIMEOUT,
        "keepalive_timeout_seconds": KEEPALIVE_TIMEOUT,
        "max_connections": MAX_CONNECTIONS,
        "max_header_bytes": MAX_HEADER_BYTES,
        "access_log": False,
        "models": [
            {"name": "iris", "platform": "sklearn", "base_path": str(sklearn_models_dir / "iris")}
        ],
    }
    with spawn_gateway(config, tmp_path_factory.mktemp("connections")) as gateway:
        wait_until_ready(gateway.url, gateway.process, gateway.log)
        yield gateway.url, gateway.port
    # Nothing above may have made the gateway raise (the log holds every traceback).
    assert "Traceback" not in gateway.log.read_text(errors="replace")


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(HEADER_TIMEOUT + KEEPALIVE_TIMEOUT + SLACK + 5)
    return sock


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read until the server closes; (status, headers, body). Status 0: closed silently."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return 0, {}, b""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines)
    }
    return int(status_line.split()[1]), headers, body


def _assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> str:
    assert status == expected, (status, body)
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert list(error) == ["error"] and isinstance(error["error"], str), error
    return str(error["error"])


def _predict_ok(url: str) -> None:
    response = httpx.post(url + PREDICT, json=BODY, timeout=10)
    assert response.status_code == 200, response.text


def test_an_idle_connection_is_closed_after_the_header_timeout(gateway: tuple[str, int]) -> None:
    _, port = gateway
    with _connect(port) as sock:
        started = time.monotonic()
        status, _, _ = _read_answer(sock)
        waited = time.monotonic() - started
    assert status == 0  # closed without an answer: it never sent a request
    assert HEADER_TIMEOUT - 0.2 <= waited <= HEADER_TIMEOUT + SLACK, waited


def test_headers_sent_a_byte_at_a_time_get_408(gateway: tuple[str, int]) -> None:
    url, port = gateway
    head = f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
    with _connect(port) as sock:
        started = time.monotonic()
        sent = 0
        with contextlib.suppress(OSError):
            for byte in head:
                sock.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.05)
        status, headers, body = _read_answer(sock)
        waited = time.monotonic() - started
    message = _assert_json_error(status, headers, body, 408)
    assert "header_timeout_seconds" in message
    assert waited <= HEADER_TIMEOUT + SLACK, waited
    assert sent < len(head)  # cut off mid-head
    _predict_ok(url)


def test_a_keep_alive_connection_idle_after_a_request_is_closed(gateway: tuple[str, int]) -> None:
    _, port = gateway
    body = json.dumps(BODY).encode()
    request = (
        f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with _connect(port) as sock:
        sock.sendall(request)
        started = time.monotonic()
        status, _, answer = _read_answer(sock)  # the answer, then the close
        waited = time.monotonic() - started
    assert status == 200, answer
    assert waited <= KEEPALIVE_TIMEOUT + SLACK, waited


@pytest.mark.parametrize(
    ("head", "expected", "mentions"),
    [
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
            431,
            "max_header_bytes",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 90) for i in range(200))
            + b"\r\n",
            431,
            "max_header_bytes",
        ),
        (b"GET /v1/models/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URL"),
        (b"NOT AN HTTP REQUEST\r\n\r\n", 400, "Invalid HTTP request"),
        (b"GET / HTTP/1.1\r\nBad Header Name: x\r\n\r\n", 400, "Invalid HTTP request"),
    ],
    ids=["one-20k-header", "200-headers", "70k-url", "garbage-request-line", "bad-header-name"],
)
def test_oversized_or_malformed_heads_get_a_json_error(
    gateway: tuple[str, int], head: bytes, expected: int, mentions: str
) -> None:
    url, port = gateway
    with _connect(port) as sock:
        with contextlib.suppress(OSError):  # the server may close before all is sent
            sock.sendall(head)
        status, headers, body = _read_answer(sock)
    assert mentions in _assert_json_error(status, headers, body, expected)
    _predict_ok(url)


@pytest.mark.parametrize("rows", [1, 2_000, 50_000, 400_000])
def test_bodies_far_larger_than_the_head_limit_are_served(
    gateway: tuple[str, int], rows: int
) -> None:
    """Body bytes never count as head, whichever socket read they arrive in (a body up to
    ~9 MB here, next to a head close to the 8 KiB limit)."""
    url, _ = gateway
    body = b'{"instances":[' + b",".join([b"[5.1,3.5,1.4,0.2]"] * rows) + b"]}"
    headers = {"X-Padding": "p" * (MAX_HEADER_BYTES - 400)}
    answer = httpx.post(url + PREDICT, content=body, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text[:200]
    assert len(answer.json()["predictions"]) == rows


def test_a_32_mb_header_is_refused_with_bounded_memory(gateway: tuple[str, int]) -> None:
    url, port = gateway
    rss_before = _gateway_rss_kb(port)
    with _connect(port) as sock:
        sent = 0
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * 65536
            while sent < 32 * 2**20:
                sock.sendall(chunk)
                sent += len(chunk)
        status, headers, body = _read_answer(sock)
    _assert_json_error(status, headers, body, 431)
    assert sent < 32 * 2**20  # refused long before the end
    assert _gateway_rss_kb(port) - rss_before < 16 * 1024  # not tens of MB
    _predict_ok(url)


def test_beyond_the_connection_cap_new_connections_are_refused_at_once(
    gateway: tuple[str, int],
) -> None:
    """2,000 idle connections against a cap of 300: the first ones are held until their
    header timeout, the others refused at once with 503 JSON; a normal request meanwhile
    is served or refused at once, never left hanging; afterwards all is served."""
    url, port = gateway
    sockets: list[socket.socket] = []
    try:
        opening = time.monotonic()
        for _ in range(2000):
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        # Held ones that reach their header timeout while the rest are still being opened
        # free their slots for later ones: allow one cap's worth per timeout elapsed.
        rounds = 1 + math.ceil((time.monotonic() - opening) / HEADER_TIMEOUT)
        started = time.monotonic()
        try:
            response = httpx.post(url + PREDICT, json=BODY, timeout=5)
        except httpx.RemoteProtocolError:
            response = None  # closed by the server at once: refused, not hung
        assert time.monotonic() - started < 1.0
        if response is not None:
            assert response.status_code in (200, 503), response.text
        refused = held = 0
        deadline = time.monotonic() + HEADER_TIMEOUT + SLACK + 5
        for sock in sockets:
            sock.settimeout(max(deadline - time.monotonic(), 0.1))
            status, headers, body = _read_answer(sock)
            if status == 503:
                assert "too many open connections" in _assert_json_error(status, headers, body, 503)
                assert headers["retry-after"] == "1"
                refused += 1
            else:
                assert status == 0, (status, body)
                held += 1
        assert held <= MAX_CONNECTIONS * rounds, (held, refused, rounds)
        assert refused >= 2000 - MAX_CONNECTIONS * rounds, (held, refused, rounds)
        assert time.monotonic() < deadline  # every one closed within its timeout
    finally:
        for sock in sockets:
            sock.close()
    _predict_ok(url)


def _gateway_rss_kb(port: int) -> int:
    """RSS of the process listening on `port` (found through /proc)."""
    inode = _listening_inode(port)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            return int(line.split()[1])
    raise AssertionError(f"no process listens on port {port}")


def _listening_inode(port: int) -> str:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # LISTEN
            return fields[9]
    raise AssertionError(f"port {port} is not listening")
