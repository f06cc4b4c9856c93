"""Request ids, Prometheus metrics, Server-Timing and logs, seen from outside over HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from clients.embedded import EmbeddedTfServing
from gateway.settings import ModelConfig, Settings
from tests.conftest import REPO, gateway_client

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
HEX_ID = re.compile(r"[0-9a-f]{32}")
SERVER_TIMING = re.compile(r"parse;dur=[0-9.]+, backend;dur=[0-9.]+, render;dur=[0-9.]+")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _samples(client: httpx.AsyncClient) -> Samples:
    """Every sample of the /metrics exposition: (name, sorted labels) -> value."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# ---- X-Request-ID -----------------------------------------------------------------------


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "trace-1.a:b_c-D"})
    assert response.headers["x-request-id"] == "trace-1.a:b_c-D"


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, "new\\nline", b"\xe9t\xe9"])
async def test_request_id_is_generated_when_absent_or_insane(
    client: httpx.AsyncClient, given: str | bytes | None
) -> None:
    headers = {} if given is None else {"X-Request-ID": given}
    response = await client.get("/healthz", headers=headers)
    assert HEX_ID.fullmatch(response.headers["x-request-id"])


async def test_request_id_is_on_errors_too(client: httpx.AsyncClient) -> None:
    for response in (
        await client.post("/v1/models/nope:predict", json={"instances": [1.0]}),
        await client.get("/v1/bogus"),
        await client.get("/nowhere"),
    ):
        assert response.status_code >= 400
        assert HEX_ID.fullmatch(response.headers["x-request-id"])


# ---- Prometheus -------------------------------------------------------------------------


async def test_metrics_count_requests_with_model_version_and_signature(
    client: httpx.AsyncClient,
) -> None:
    version = (await client.get("/v1/models/iris/metadata")).json()["model_spec"]["version"]
    labels = {"model": "iris", "version": version, "signature": "predict_proba"}
    before = await _samples(client)
    for _ in range(3):
        body = {"signature_name": "predict_proba", "instances": [IRIS_ROW]}
        response = await client.post("/v1/models/iris:predict", json=body)
        assert response.status_code == 200, response.text
    tf = await client.post("/v1/models/half_plus_two:predict", json={"instances": [1.0]})
    assert tf.status_code == 200, tf.text
    after = await _samples(client)

    def delta(name: str, **extra: str) -> float:
        return _value(after, name, **extra) - _value(before, name, **extra)

    assert delta("gateway_requests_total", **labels, verb="predict", code="200") == 3
    assert delta("gateway_request_duration_seconds_count", **labels, verb="predict") == 3
    assert (
        delta("gateway_request_duration_seconds_bucket", **labels, verb="predict", le="10.0") == 3
    )
    assert delta("gateway_backend_duration_seconds_count", model="iris", verb="predict") == 3
    tf_labels = {"model": "half_plus_two", "version": "123", "signature": "serving_default"}
    assert delta("gateway_requests_total", **tf_labels, verb="predict", code="200") == 1
    assert _value(after, "gateway_requests_in_flight") == 1  # the scrape itself
    assert any(name == "gateway_model_loads_total" for name, _ in after)  # backend metrics


async def test_errors_are_counted_without_version_or_signature(client: httpx.AsyncClient) -> None:
    before = await _samples(client)
    body = {"signature_name": "no_such_signature", "instances": [IRIS_ROW]}
    assert (await client.post("/v1/models/iris:predict", json=body)).status_code == 400
    after = await _samples(client)
    labels = {"model": "iris", "verb": "predict", "code": "400"}
    assert _value(after, "gateway_request_errors_total", **labels) == (
        _value(before, "gateway_request_errors_total", **labels) + 1
    )
    request_labels = {"version": "", "signature": "", **labels}
    assert _value(after, "gateway_requests_total", **request_labels) >= 1


async def test_hostile_names_and_versions_create_no_series(client: httpx.AsyncClient) -> None:
    async def hostile_requests() -> None:
        token = uuid.uuid4().hex
        big = str(uuid.uuid4().int % 10**12 + 10**9)
        for path in (
            f"/v1/models/{token}:predict",
            f"/v1/models/iris/versions/{big}:predict",
            f"/v1/models/iris/labels/l{token}:predict",
            f"/v1/models/iris/versions/{big}:classify",
            f"/v1/models/iris/versions/{big}/metadata",
            f"/v1/models/{token}/versions/{big}",
            f"/v1/{token}",
        ):
            if path.endswith(("predict", "classify")):
                await client.post(path, json={"instances": [IRIS_ROW]})
            else:
                await client.get(path)
        body = {"signature_name": token, "instances": [IRIS_ROW]}
        await client.post("/v1/models/iris:predict", json=body)

    await hostile_requests()  # the first round may add the bounded "_unknown"/error series
    before = set(await _samples(client))
    for _ in range(3):
        await hostile_requests()
    after = set(await _samples(client))
    assert after - before == set()


async def test_global_load_shedding_is_counted(gateway_settings: Settings) -> None:
    settings = gateway_settings.model_copy(update={"max_concurrent_requests": 1})
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        started.set()  # the first request now holds the only slot, its body half sent
        yield b'{"instances": '
        await release.wait()
        yield json.dumps([IRIS_ROW]).encode() + b"}"

    async with gateway_client(settings) as http:
        before = await _samples(http)
        held = asyncio.create_task(http.post("/v1/models/iris:predict", content=slow_body()))
        await started.wait()
        shed = await http.post("/v1/models/iris:predict", json={"instances": [IRIS_ROW]})
        release.set()
        assert (await held).status_code == 200
        assert shed.status_code == 503
        assert HEX_ID.fullmatch(shed.headers["x-request-id"])
        after = await _samples(http)
    name = "gateway_shed_requests_total"
    assert _value(after, name, reason="global") == _value(before, name, reason="global") + 1


async def test_backend_unavailable_is_not_counted_as_shedding(
    client: httpx.AsyncClient, tf_test_models: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 503 from an unreachable backend is an error logged with its request id, not load."""
    port_file = ModelConfig(
        name="half_plus_two",
        platform="tensorflow",
        base_path=str(tf_test_models / "half_plus_two"),
    )
    settings = Settings(
        tf_serving_target="127.0.0.1:1",
        tf_retry_max_attempts=1,
        access_log=False,
        models=[port_file],
    )
    async with gateway_client(settings) as http:
        before = await _samples(http)
        with caplog.at_level(logging.WARNING, logger="gateway.access"):
            response = await http.post(
                "/v1/models/half_plus_two:predict",
                json={"instances": [1.0]},
                headers={"X-Request-ID": "unavailable-1"},
            )
        after = await _samples(http)
    assert response.status_code == 503
    name = "gateway_shed_requests_total"
    assert _value(after, name, reason="global") == _value(before, name, reason="global")
    logged = [r for r in caplog.records if r.name == "gateway.access"]
    assert [(r.levelno, r.__dict__["request_id"], r.__dict__["status"]) for r in logged] == [
        (logging.WARNING, "unavailable-1", 503)
    ]


async def test_metrics_is_open_and_not_in_openapi(gateway_settings: Settings) -> None:
    settings = gateway_settings.model_copy(update={"api_keys": [SecretStr("k3y")]})
    async with gateway_client(settings) as http:
        assert (await http.get("/metrics")).status_code == 200
        closed = await http.post("/v1/models/iris:predict", json={"instances": [IRIS_ROW]})
        assert closed.status_code == 401
        openapi = await http.get("/openapi.json", headers={"X-API-Key": "k3y"})
        assert "/metrics" not in openapi.json()["paths"]


# ---- Server-Timing ----------------------------------------------------------------------


@pytest.mark.parametrize("model", ["iris", "half_plus_two"])
async def test_server_timing_on_predict(client: httpx.AsyncClient, model: str) -> None:
    body = {"instances": [IRIS_ROW] if model == "iris" else [1.0]}
    response = await client.post(f"/v1/models/{model}:predict", json=body)
    assert response.status_code == 200, response.text
    assert SERVER_TIMING.fullmatch(response.headers["server-timing"])
    backend = float(response.headers["server-timing"].split("backend;dur=")[1].split(",")[0])
    assert backend > 0


# ---- The request id reaches TF Serving ---------------------------------------------------


class _RecordingProxy(grpc.GenericRpcHandler):
    """Forwards every unary call to the real backend, remembering its metadata."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        metadata = dict(details.invocation_metadata)  # type: ignore[attr-defined]
        self.calls.append((details.method, metadata))  # type: ignore[attr-defined]
        forward = self.channel.unary_unary(details.method)  # type: ignore[attr-defined]

        async def handle(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            return await forward(request)  # type: ignore[no-any-return]

        return grpc.unary_unary_rpc_method_handler(handle)


async def test_request_id_reaches_tf_serving_as_grpc_metadata(
    compat_backend: EmbeddedTfServing, gateway_settings: Settings
) -> None:
    async with grpc.aio.insecure_channel(compat_backend.target) as channel:
        proxy = _RecordingProxy(channel)
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((proxy,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            settings = gateway_settings.model_copy(
                update={"tf_serving_target": f"127.0.0.1:{port}"}
            )
            async with gateway_client(settings) as http:
                response = await http.post(
                    "/v1/models/half_plus_two:predict",
                    json={"instances": [1.0]},
                    headers={"X-Request-ID": "grpc-trace-42"},
                )
        finally:
            await server.stop(None)
    assert response.status_code == 200, response.text
    predicts = [seen for method, seen in proxy.calls if method.endswith("/Predict")]
    assert predicts
    assert all(seen.get("x-request-id") == "grpc-trace-42" for seen in predicts)


def test_metrics_of_every_worker_in_multiprocess_mode(tmp_path: Any) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (set for `--workers` > 1) /metrics merges the workers."""
    script = (
        "import asyncio, httpx\n"
        "from gateway.app import create_app\n"
        "from gateway.settings import Settings\n"
        "async def main():\n"
        "    app = create_app(Settings())\n"
        "    transport = httpx.ASGITransport(app=app)\n"
        "    async with app.router.lifespan_context(app), httpx.AsyncClient(\n"
        "        transport=transport, base_url='http://g'\n"
        "    ) as http:\n"
        "        await http.post('/v1/models/nope:predict', json={'instances': [1]})\n"
        "        print((await http.get('/metrics')).text)\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[-1].stderr
    assert list(tmp_path.iterdir())  # the workers' mmap files
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(runs[-1].stdout)
        for sample in family.samples
    }
    labels = {"model": "_unknown", "version": "", "signature": "", "verb": "predict"}
    assert _value(samples, "gateway_requests_total", **labels, code="404") == 2  # both runs
    assert _value(samples, "gateway_request_duration_seconds_count", **labels) == 2
    assert _value(samples, "gateway_requests_in_flight") == 1  # the scrape itself
