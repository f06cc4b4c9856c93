"""Several TF Serving replicas behind one target, with real processes (docs/faults.md).

Three `tfserving_compat` processes listen on one port at 127.0.0.2, .3 and .4 (a fourth,
.5, joins through DNS), each serving the project's own half_plus_two export. The gateway
reaches them through one `ipv4:` or `dns://` target. How many calls each replica got is
read from gRPC's own channelz counters of the gateway's balanced channel (every
subchannel is one replica), so the tests see what gRPC really sent where.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSServer
from grpc._cython import cygrpc

from clients.tf_channel import UNAVAILABLE_MESSAGE
from gateway.settings import ModelConfig, Settings
from tests.conftest import gateway_client
from tests.grpc_proxy import GrpcProxy

REPLICA_IPS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
LATE_IP = "127.0.0.5"
PREDICT = "/v1/models/half_plus_two:predict"
BODY = {"instances": [1.0, 2.0]}
TIMEOUT = 2.0  # the gateway's request deadline in this module


def _port_free_on_every_ip() -> int:
    """A port nobody listens on at any of the replica addresses."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((REPLICA_IPS[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for ip in (*REPLICA_IPS[1:], LATE_IP):
                with socket.socket() as other:
                    other.bind((ip, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port is free on every replica address")


class Replica:
    """One `python -m tfserving_compat` process on `ip:port`."""

    def __init__(self, ip: str, port: int, base_path: Path) -> None:
        self.ip, self.port, self.base_path = ip, port, base_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """The replica as the gateway's subchannels name it."""
        return f"ipv4:{self.ip}:{self.port}"

    def start(self) -> None:
        """Spawn the server (it listens once its model is loaded)."""
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tfserving_compat",
                f"--host={self.ip}",
                f"--port={self.port}",
                "--model_name=half_plus_two",
                f"--model_base_path={self.base_path}",
                "--file_system_poll_wait_seconds=0",
                "--exit_with_parent",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_listening(self, within: float = 180.0) -> None:
        """Block until the port accepts connections; fail if the process exits first."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, "replica exited"
            with contextlib.suppress(OSError), socket.create_connection((self.ip, self.port), 1):
                return
            time.sleep(0.2)
        pytest.fail(f"replica {self.address} did not listen within {within} s")

    def signal(self, signum: int) -> None:
        """Send `signum` to the process."""
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def stop(self) -> None:
        """Kill the process (continuing it first if it was stopped)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def half_plus_two_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's own half_plus_two export (version 1)."""
    from examples.tf_models import build_half_plus_two

    models = tmp_path_factory.mktemp("replica-models")
    build_half_plus_two(models)
    return models / "half_plus_two"


@pytest.fixture(scope="module")
def replicas(half_plus_two_dir: Path) -> Iterator[list[Replica]]:
    """Three replicas on one port, started together."""
    port = _port_free_on_every_ip()
    started = [Replica(ip, port, half_plus_two_dir) for ip in REPLICA_IPS]
    try:
        for replica in started:
            replica.start()
        for replica in started:
            replica.wait_listening()
        yield started
    finally:
        for replica in started:
            replica.stop()


def _settings(target: str, **overrides: object) -> Settings:
    model = ModelConfig(name="half_plus_two", platform="tensorflow", base_path="/unused")
    options: dict[str, object] = {
        "tf_serving_target": target,
        "request_timeout_seconds": TIMEOUT,
        "tf_status_poll_seconds": 0.25,
        "models": [model],
        **overrides,
    }
    return Settings(**options)  # type: ignore[arg-type]


def _ipv4_target(replicas: list[Replica]) -> str:
    return "ipv4:" + ",".join(f"{replica.ip}:{replica.port}" for replica in replicas)


def calls_by_replica(target: str) -> dict[str, tuple[int, int]]:
    """(calls started, calls succeeded) per replica address, over every channel of
    `target` that gRPC has open in this process (channelz)."""
    counts: dict[str, tuple[int, int]] = {}
    start = 0
    while True:
        page = json.loads(cygrpc.channelz_get_top_channels(start))
        for channel in page.get("channel", []):
            start = max(start, int(channel["ref"]["channelId"]) + 1)
            if channel["data"]["target"] != target:
                continue
            for ref in channel.get("subchannelRef", []):
                sub = json.loads(cygrpc.channelz_get_subchannel(int(ref["subchannelId"])))
                data = sub["subchannel"]["data"]
                started, succeeded = counts.get(data["target"], (0, 0))
                counts[data["target"]] = (
                    started + int(data.get("callsStarted", 0)),
                    succeeded + int(data.get("callsSucceeded", 0)),
                )
        if page.get("end", True) or not page.get("channel"):
            return counts


async def _until_ready(http: httpx.AsyncClient, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while (await http.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, (await http.get("/readyz")).text
        await asyncio.sleep(0.1)


class Load:
    """`workers` concurrent callers of PREDICT until stopped; records every answer."""

    def __init__(self, http: httpx.AsyncClient, workers: int = 8) -> None:
        self._http = http
        self._workers = workers
        self._stop = asyncio.Event()
        self.answers: list[tuple[int, float, str]] = []  # (status, seconds, body)
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self._workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _worker(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            response = await asyncio.wait_for(self._http.post(PREDICT, json=BODY), TIMEOUT + 30)
            self.answers.append((response.status_code, time.monotonic() - started, response.text))

    def failures(self) -> list[tuple[int, float, str]]:
        """Every answer that was not a 200."""
        return [answer for answer in self.answers if answer[0] != 200]


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(replicas: list[Replica]) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in front of the three replicas, through one ipv4: target."""
    async with gateway_client(_settings(_ipv4_target(replicas), tf_ejection_seconds=5)) as http:
        await _until_ready(http)
        yield http


async def test_calls_spread_evenly_over_every_replica(
    gateway: httpx.AsyncClient, replicas: list[Replica]
) -> None:
    target = _ipv4_target(replicas)
    before = calls_by_replica(target)
    responses = []
    for _ in range(6):  # 300 calls, 50 at a time
        responses += await asyncio.gather(*(gateway.post(PREDICT, json=BODY) for _ in range(50)))
    assert {response.status_code for response in responses} == {200}
    assert responses[0].json() == {"predictions": [2.5, 3.0]}
    after = calls_by_replica(target)
    served = {r.address: after[r.address][1] - before.get(r.address, (0, 0))[1] for r in replicas}
    # 300 Predicts plus the few GetModelMetadata calls of the cache's refreshes
    assert 300 <= sum(served.values()) <= 310, served
    mean = sum(served.values()) / 3
    for address, count in served.items():
        assert abs(count - mean) <= 0.15 * mean, (address, served)


async def test_backends_view_and_metrics_show_every_replica(
    gateway: httpx.AsyncClient, replicas: list[Replica]
) -> None:
    body = (await gateway.get("/backends")).json()
    (backend,) = body["backends"]
    assert backend["target"] == _ipv4_target(replicas) and backend["checked"]
    assert {replica["address"] for replica in backend["replicas"]} == {r.address for r in replicas}
    for replica in backend["replicas"]:
        assert replica["reachable"], replica
        (version,) = replica["models"]["half_plus_two"]
        assert (version["version"], version["state"]) == ("1", "AVAILABLE")
    metrics = (await gateway.get("/metrics")).text
    for replica in replicas:
        line = next(
            line
            for line in metrics.splitlines()
            if line.startswith("gateway_tf_replica_up{") and replica.address in line
        )
        assert line.endswith(" 1.0"), line


async def test_sigkill_of_a_replica_under_load_fails_no_request(
    gateway: httpx.AsyncClient, replicas: list[Replica]
) -> None:
    victim = replicas[0]
    target = _ipv4_target(replicas)
    async with Load(gateway) as load:
        await asyncio.sleep(1.0)
        victim.signal(signal.SIGKILL)
        victim.process.wait()  # type: ignore[union-attr]
        await asyncio.sleep(2.0)
    assert load.failures() == [], load.failures()[:5]
    assert len(load.answers) > 50
    # The dead replica is shown as such, the model stays ready on the others.
    await asyncio.sleep(0.6)
    view = (await gateway.get("/backends")).json()["backends"][0]
    dead = next(r for r in view["replicas"] if r["address"] == victim.address)
    assert not dead["reachable"] and dead["error"], dead
    assert (await gateway.get("/readyz")).status_code == 200

    # Restarted on the same address, it gets calls again.
    victim.start()
    victim.wait_listening()
    before = calls_by_replica(target).get(victim.address, (0, 0))[1]
    deadline = time.monotonic() + 15
    while calls_by_replica(target).get(victim.address, (0, 0))[1] - before < 10:
        assert time.monotonic() < deadline, calls_by_replica(target)
        responses = await asyncio.gather(*(gateway.post(PREDICT, json=BODY) for _ in range(30)))
        assert {response.status_code for response in responses} == {200}


def _predicts(proxy: GrpcProxy) -> int:
    """Predict calls the proxy received (the monitor's status polls aside)."""
    return sum(method.endswith("/Predict") for method, _ in proxy.calls)


async def test_a_replica_that_fails_its_calls_is_ejected_and_they_are_retried(
    replicas: list[Replica],
) -> None:
    """A third replica answers every call with UNAVAILABLE (a real gRPC server, stuck
    "not serving"): its calls are retried on the two good replicas, no request fails,
    and outlier detection ejects it so it stops getting calls."""
    failing = GrpcProxy(replicas[0].address.removeprefix("ipv4:"), fail_first=10**9)
    await failing.start()
    try:
        good = replicas[1:]
        target = _ipv4_target(good) + "," + failing.target
        async with gateway_client(_settings(target, tf_ejection_seconds=30)) as http:
            await _until_ready(http)
            async with Load(http) as load:
                await asyncio.sleep(2.0)  # one ejection interval and then some
                predicts_then = _predicts(failing)
                await asyncio.sleep(1.5)
            assert load.failures() == [], load.failures()[:3]
            assert len(load.answers) > 50
            assert predicts_then > 0, "the failing replica never got a call"
            assert _predicts(failing) == predicts_then, "the ejected replica still gets calls"
    finally:
        await failing.stop()


async def test_a_hung_replica_costs_only_its_calls_in_flight_and_is_set_aside(
    gateway: httpx.AsyncClient, replicas: list[Replica]
) -> None:
    hung = replicas[1]
    target = _ipv4_target(replicas)
    workers = 8
    try:
        async with Load(gateway, workers=workers) as load:
            await asyncio.sleep(1.0)
            hung.signal(signal.SIGSTOP)
            # Its calls in flight end at their deadline, and those failures eject it at the
            # end of their 1 s interval (if they straddle two intervals with too few calls
            # in each, after the next round of calls to it). It is set aside once no call
            # has started on it for 2.5 s; on a busy machine that may take a round more.
            deadline = time.monotonic() + 4 * TIMEOUT + 6
            started, quiet_since = calls_by_replica(target)[hung.address][0], time.monotonic()
            while time.monotonic() - quiet_since < 2.5:
                assert time.monotonic() < deadline, "the hung replica still gets calls"
                await asyncio.sleep(0.25)
                now_started = calls_by_replica(target)[hung.address][0]
                if now_started != started:
                    started, quiet_since = now_started, time.monotonic()
        # No request waited past its deadline; the only failures are 504s of calls that
        # were on the hung replica: each caller's call in flight, and a round or two more
        # before the ejection.
        assert max(seconds for _, seconds, _ in load.answers) < TIMEOUT + 1.0
        failures = load.failures()
        assert {status for status, _, _ in failures} <= {504}, failures[:3]
        assert len(failures) <= 4 * workers, len(failures)
        view = (await gateway.get("/backends")).json()["backends"][0]
        stopped = next(r for r in view["replicas"] if r["address"] == hung.address)
        assert not stopped["reachable"], stopped
    finally:
        hung.signal(signal.SIGCONT)
    # Continued, it gets calls again once its ejection (5 s here) ends.
    before = calls_by_replica(target)[hung.address][1]
    deadline = time.monotonic() + 20
    while calls_by_replica(target)[hung.address][1] - before < 5:
        assert time.monotonic() < deadline, "the continued replica got no calls again"
        responses = await asyncio.gather(*(gateway.post(PREDICT, json=BODY) for _ in range(30)))
        assert {response.status_code for response in responses} == {200}
        await asyncio.sleep(0.2)


async def test_readyz_answers_at_once_starting_dead_and_under_load(
    replicas: list[Replica], gateway: httpx.AsyncClient
) -> None:
    async def timed_readyz(http: httpx.AsyncClient) -> tuple[int, float]:
        started = time.perf_counter()
        response = await http.get("/readyz")
        return response.status_code, time.perf_counter() - started

    # Under load: ready, at once.
    async with Load(gateway, workers=16):
        await asyncio.sleep(0.3)
        for _ in range(20):
            status, seconds = await timed_readyz(gateway)
            assert status == 200 and seconds < 0.05, (status, seconds)
            await asyncio.sleep(0.02)

    # Starting (nothing listens yet) and dead (nothing ever will): not ready, at once.
    nobody = _port_free_on_every_ip()
    settings = _settings(f"ipv4:127.0.0.2:{nobody},127.0.0.3:{nobody}")
    async with gateway_client(settings) as http:
        answers = [await timed_readyz(http)]
        for _ in range(20):
            answers.append(await timed_readyz(http))
            await asyncio.sleep(0.05)
        assert {status for status, _ in answers} == {503}, answers
        assert max(seconds for _, seconds in answers) < 0.05, answers
        reason = (await http.get("/readyz")).json()["models"]["half_plus_two"]
        assert "no TensorFlow Serving replica is reachable" in reason, reason


async def test_every_replica_dead_is_a_503_at_once(replicas: list[Replica]) -> None:
    nobody = _port_free_on_every_ip()
    settings = _settings(f"ipv4:127.0.0.2:{nobody},127.0.0.3:{nobody},127.0.0.4:{nobody}")
    async with gateway_client(settings) as http:
        await asyncio.sleep(0.5)  # the channel has tried every replica once
        for _ in range(20):
            started = time.perf_counter()
            response = await http.post(PREDICT, json=BODY)
            seconds = time.perf_counter() - started
            assert response.status_code == 503, response.text
            assert response.json() == {"error": UNAVAILABLE_MESSAGE}
            assert seconds < 0.1, seconds


class _Records(BaseResolver):  # type: ignore[misc]
    """A DNS zone of one name, `tfs.test`, whose A records the test changes."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        if name == "tfs.test" and request.q.qtype == QTYPE.A:
            for address in self.addresses:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=1))
        return reply


@pytest.fixture
def dns_zone() -> Iterator[tuple[_Records, int]]:
    """A DNS server on loopback (UDP and TCP, one port) serving `_Records`."""
    records = _Records([])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    servers = [DNSServer(records, port=port, address="127.0.0.1", tcp=tcp) for tcp in (False, True)]
    for server in servers:
        server.start_thread()
    try:
        yield records, port
    finally:
        for server in servers:
            server.stop()


async def test_a_replica_added_to_dns_gets_calls_within_the_refresh_interval(
    replicas: list[Replica], half_plus_two_dir: Path, dns_zone: tuple[_Records, int]
) -> None:
    records, dns_port = dns_zone
    records.addresses[:] = [replica.ip for replica in replicas]
    port = replicas[0].port
    target = f"dns://127.0.0.1:{dns_port}/tfs.test:{port}"
    late = Replica(LATE_IP, port, half_plus_two_dir)
    late.start()
    try:
        late.wait_listening()
        refresh = 1.0
        async with gateway_client(_settings(target, tf_dns_refresh_seconds=refresh)) as http:
            await _until_ready(http)
            responses = await asyncio.gather(*(http.post(PREDICT, json=BODY) for _ in range(60)))
            assert {response.status_code for response in responses} == {200}
            assert late.address not in calls_by_replica(target)
            records.addresses.append(LATE_IP)
            added = time.monotonic()
            while calls_by_replica(target).get(late.address, (0, 0))[1] == 0:
                # refresh interval, plus the new channel's connect and one status poll
                assert time.monotonic() - added < refresh + 5, calls_by_replica(target)
                responses = await asyncio.gather(
                    *(http.post(PREDICT, json=BODY) for _ in range(20))
                )
                assert {response.status_code for response in responses} == {200}
            view = (await http.get("/backends")).json()["backends"][0]
            assert late.address in {replica["address"] for replica in view["replicas"]}
    finally:
        late.stop()
