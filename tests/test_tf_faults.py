"""Faults of the TensorFlow backend, with real processes and real gRPC (docs/faults.md).

The module shares one gateway whose embedded TF-Serving-compatible backend is its own
child process (restarted by the gateway's supervisor); tests kill it with SIGKILL and
stop it with SIGSTOP under load. `GrpcProxy` (tests/grpc_proxy.py), a real gRPC server
forwarding bytes to that backend, starts late, injects UNAVAILABLE and records every
attempt's metadata: it proves the retries and the request id.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import pytest_asyncio

from clients.context import CALL_CONTEXT, CallContext
from clients.embedded import free_port
from clients.tf_channel import UNAVAILABLE_MESSAGE
from clients.tf_serving import TfServingBackend
from clients.types import Code, ModelSpec, ServingError
from gateway.settings import ModelConfig, Settings
from tests.conftest import gateway_client, sklearn_model_configs
from tests.grpc_proxy import GrpcProxy

TF_PREDICT = "/v1/models/half_plus_two:predict"
SK_PREDICT = "/v1/models/iris:predict"
TF_BODY = {"instances": [1.0, 2.0]}
SK_BODY = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
TIMEOUT = 3.0  # the gateway's request_timeout_seconds in this module
HANG = 30.0  # beyond its deadline plus this, a request hung


def _half_plus_two(tf_test_models: Path) -> ModelConfig:
    folder = tf_test_models / "half_plus_two"
    return ModelConfig(name="half_plus_two", platform="tensorflow", base_path=str(folder))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(
    sklearn_models_dir: Path, tf_test_models: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    """The gateway on its embedded backend (fixed port), once TF answers; and that port."""
    port = free_port()
    settings = Settings(
        embedded_port=port,
        embedded_poll_seconds=0,
        request_timeout_seconds=TIMEOUT,
        metadata_ttl_seconds=0,
        models=[_half_plus_two(tf_test_models), *sklearn_model_configs(sklearn_models_dir)],
    )
    async with gateway_client(settings) as http:
        await _until_tf_serves(http)
        yield http, port


async def _post(
    http: httpx.AsyncClient, path: str, body: object, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST, failing the test if the gateway has not answered long after the deadline."""
    try:
        return await asyncio.wait_for(http.post(path, json=body, headers=headers), TIMEOUT + HANG)
    except TimeoutError:
        pytest.fail(f"POST {path} hung past its deadline")


async def _until_tf_serves(http: httpx.AsyncClient, within: float = 180.0) -> None:
    deadline = time.monotonic() + within
    while (await _post(http, TF_PREDICT, TF_BODY)).status_code != 200:
        assert time.monotonic() < deadline, "TensorFlow models did not answer 200 again"
        await asyncio.sleep(0.2)


def _backend_pid(port: int) -> int:
    """The embedded backend: our live child process started with `--port=<port>` (the
    newest, should a killed one not be reaped yet)."""
    found: list[tuple[int, int]] = []  # (start time, pid)
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        state, parent, started = stat[0], int(stat[1]), int(stat[19])
        if parent == os.getpid() and state != "Z" and f"--port={port}".encode() in command:
            found.append((started, int(proc.name)))
    assert found, f"no backend child process on port {port}"
    return max(found)[1]


def _assert_clean_error(response: httpx.Response, *statuses: int) -> None:
    """A JSON {"error": ...} with one of `statuses`: no stack trace, no internal address."""
    assert response.status_code in statuses, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    assert "Traceback" not in body["error"] and "127.0.0.1" not in body["error"], body


async def test_unreachable_backend_at_start(sklearn_models_dir: Path, tf_test_models: Path) -> None:
    """Nobody listens at the TF target: the gateway starts, sklearn serves, TF is a quick 503."""
    settings = Settings(
        tf_serving_target=f"127.0.0.1:{free_port()}",
        request_timeout_seconds=TIMEOUT,
        models=[_half_plus_two(tf_test_models), *sklearn_model_configs(sklearn_models_dir)],
    )
    async with gateway_client(settings) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and set(ready.json()["models"]) == {"half_plus_two"}
        assert (await _post(http, SK_PREDICT, SK_BODY)).status_code == 200
        started = time.monotonic()
        down = await _post(http, TF_PREDICT, TF_BODY)
        assert time.monotonic() - started < TIMEOUT, "a refused connection must not wait"
        _assert_clean_error(down, 503)
        assert down.json() == {"error": UNAVAILABLE_MESSAGE}


async def test_kill_9_under_load_then_supervisor_restarts(
    gateway: tuple[httpx.AsyncClient, int],
) -> None:
    """SIGKILL the backend amid TF and sklearn traffic: no 500, no hang, sklearn unharmed;
    the gateway restarts it on the same port and serves TF again without a restart."""
    http, port = gateway
    victim = _backend_pid(port)
    warm, killed, recovered, stop = (asyncio.Event() for _ in range(4))
    seen: list[tuple[str, bool, httpx.Response]] = []

    async def stream(path: str, body: object) -> None:
        while not stop.is_set():
            after_kill = killed.is_set()
            response = await _post(http, path, body)
            seen.append((path, after_kill, response))
            if sum(path == TF_PREDICT for path, _, _ in seen) >= 10:
                warm.set()
            if path == TF_PREDICT and after_kill and response.status_code == 200:
                recovered.set()
            await asyncio.sleep(0.05)

    streams = [asyncio.create_task(stream(TF_PREDICT, TF_BODY)) for _ in range(3)]
    streams += [asyncio.create_task(stream(SK_PREDICT, SK_BODY)) for _ in range(2)]
    try:
        await asyncio.wait_for(warm.wait(), 60)
        os.kill(victim, signal.SIGKILL)
        killed.set()
        await asyncio.wait_for(recovered.wait(), 180)
    finally:
        stop.set()
        await asyncio.gather(*streams)

    for path, _, response in seen:
        if path == SK_PREDICT:
            assert response.status_code == 200, response.text
        elif response.status_code != 200:
            _assert_clean_error(response, 503, 504)
    failed = [r for path, after, r in seen if path == TF_PREDICT and after and r.status_code != 200]
    assert failed, "the kill should have been seen by some TF request"
    assert _backend_pid(port) != victim


async def test_stalled_backend_gives_504_within_the_deadline(
    gateway: tuple[httpx.AsyncClient, int],
) -> None:
    """SIGSTOP the backend: requests end in 504 at their deadline, not hang; SIGCONT heals."""
    http, port = gateway
    stalled = _backend_pid(port)
    client = TfServingBackend(f"127.0.0.1:{port}")
    await client.start()
    os.kill(stalled, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = await _post(http, TF_PREDICT, TF_BODY, {"X-Request-Timeout": "1"})
        assert time.monotonic() - started < 1 + HANG, "hung past its 1 s deadline"
        _assert_clean_error(response, 504)
        token = CALL_CONTEXT.set(CallContext(deadline=time.monotonic() + 0.5))
        try:
            with pytest.raises(ServingError) as raised:
                await asyncio.wait_for(client.status("half_plus_two", None), HANG)
        finally:
            CALL_CONTEXT.reset(token)
        assert raised.value.code == Code.DEADLINE_EXCEEDED
        assert "deadline" in raised.value.message and str(port) not in raised.value.message
    finally:
        os.kill(stalled, signal.SIGCONT)
        await client.close()
    await _until_tf_serves(http)


async def _predict(client: TfServingBackend, request_id: str | None = None) -> None:
    token = CALL_CONTEXT.set(CallContext(request_id, time.monotonic() + 10))
    try:
        spec = ModelSpec("half_plus_two", version=123)
        outputs = await client.predict(spec, {"x": np.array([2.0], np.float32)})
        assert outputs["y"].tolist() == [3.0]
    finally:
        CALL_CONTEXT.reset(token)


@pytest.mark.parametrize("attempts", [5, 1])
async def test_a_call_made_while_the_backend_is_down_retries(
    gateway: tuple[httpx.AsyncClient, int], attempts: int
) -> None:
    """The backend's port opens 0.5 s after the call started: gRPC's retry policy (first
    retry ~1.5 s later) lets the call succeed within its deadline; without retries it fails."""
    _, port = gateway
    proxy = GrpcProxy(f"127.0.0.1:{port}")
    client = TfServingBackend(
        proxy.target, retry_max_attempts=attempts, retry_initial_backoff_seconds=1.5
    )
    await client.start()
    call = asyncio.create_task(_predict(client))
    try:
        await asyncio.sleep(0.5)
        await proxy.start()
        if attempts == 1:
            with pytest.raises(ServingError) as raised:
                await call
            assert raised.value.code == Code.UNAVAILABLE and not proxy.calls
        else:
            await call
            [(_, metadata)] = proxy.calls  # the attempts before it never reached a server
            assert int(metadata["grpc-previous-rpc-attempts"]) >= 1
    finally:
        await client.close()
        await proxy.stop()


async def test_retries_are_bounded_and_carry_the_request_id(
    gateway: tuple[httpx.AsyncClient, int],
) -> None:
    """UNAVAILABLE answers are retried up to the configured attempts, each attempt with
    the request id; other errors are not retried."""
    _, port = gateway
    proxy = GrpcProxy(f"127.0.0.1:{port}", fail_first=2)
    await proxy.start()
    client = TfServingBackend(proxy.target, retry_max_attempts=3)
    await client.start()
    try:
        await _predict(client, "req-1")
        assert [metadata.get("x-request-id") for _, metadata in proxy.calls] == ["req-1"] * 3
        proxy.calls.clear()
        proxy.fail_first = 10
        with pytest.raises(ServingError) as raised:
            await _predict(client, "req-2")
        assert raised.value.code == Code.UNAVAILABLE and len(proxy.calls) == 3
        proxy.calls.clear()
        proxy.fail_first = 0
        with pytest.raises(ServingError) as raised:
            await client.predict(ModelSpec("half_plus_two", version=999), {})
        assert raised.value.code == Code.NOT_FOUND and len(proxy.calls) == 1
    finally:
        await client.close()
        await proxy.stop()


async def test_not_found_evicts_cached_metadata(gateway: tuple[httpx.AsyncClient, int]) -> None:
    """A NOT_FOUND from Predict (the resolved version is gone) drops the model's cached
    metadata, so the next resolution asks the server again."""
    _, port = gateway
    proxy = GrpcProxy(f"127.0.0.1:{port}")
    await proxy.start()
    client = TfServingBackend(proxy.target, metadata_ttl_seconds=3600)
    await client.start()

    def metadata_calls() -> int:
        return sum(method.endswith("/GetModelMetadata") for method, _ in proxy.calls)

    try:
        latest = ModelSpec("half_plus_two")
        assert (await client.metadata(latest)).version == 123
        await client.metadata(latest)
        assert metadata_calls() == 1  # cached
        with pytest.raises(ServingError):
            await client.predict(ModelSpec("half_plus_two", version=999), {})
        await client.metadata(latest)
        assert metadata_calls() == 2
    finally:
        await client.close()
        await proxy.stop()


async def test_a_burst_of_cache_misses_makes_one_metadata_call(
    gateway: tuple[httpx.AsyncClient, int],
) -> None:
    """50 concurrent resolutions of an uncached model share one GetModelMetadata call."""
    _, port = gateway
    proxy = GrpcProxy(f"127.0.0.1:{port}")
    await proxy.start()
    client = TfServingBackend(proxy.target, metadata_ttl_seconds=3600)
    await client.start()
    try:
        spec = ModelSpec("half_plus_two")
        results = await asyncio.gather(*(client.metadata(spec) for _ in range(50)))
        assert {metadata.version for metadata in results} == {123}
        assert "serving_default" in results[0].signatures
        calls = [method for method, _ in proxy.calls if method.endswith("/GetModelMetadata")]
        assert len(calls) == 1, calls
    finally:
        await client.close()
        await proxy.stop()


async def test_the_request_id_reaches_tf_serving(
    gateway: tuple[httpx.AsyncClient, int], tf_test_models: Path
) -> None:
    """The caller's X-Request-ID arrives at TF Serving as gRPC metadata on every call the
    request makes (the replica monitor's background status polls belong to no request)."""
    _, port = gateway
    proxy = GrpcProxy(f"127.0.0.1:{port}")
    await proxy.start()
    try:
        settings = Settings(tf_serving_target=proxy.target, models=[_half_plus_two(tf_test_models)])
        async with gateway_client(settings) as http:
            response = await _post(http, TF_PREDICT, TF_BODY, {"X-Request-ID": "trace-42"})
        assert response.status_code == 200, response.text
        request_calls = [meta for method, meta in proxy.calls if "PredictionService" in method]
        assert request_calls and {meta.get("x-request-id") for meta in request_calls} == {
            "trace-42"
        }
    finally:
        await proxy.stop()
