"""The edge of the gateway over HTTP: body limits and encodings, deadlines, API keys, CORS
and load shedding (routers/edge.py), against the real app with the sklearn models."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.types import Receive, Scope, Send

from clients.context import CALL_CONTEXT, CallContext
from clients.embedded import free_port
from gateway.settings import ModelConfig, Settings
from routers.edge import EdgeMiddleware
from tests.conftest import gateway_client, sklearn_model_configs

pytestmark = pytest.mark.asyncio(loop_scope="session")

PREDICT = "/v1/models/iris:predict"
ROWS = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
LIMIT = 100_000


def _settings(models_dir: Path, **changes: Any) -> Settings:
    return Settings(models=sklearn_model_configs(models_dir), max_body_bytes=LIMIT, **changes)


@pytest.fixture
async def http(sklearn_models_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with a 100 kB body limit and nothing else changed."""
    async with gateway_client(_settings(sklearn_models_dir)) as client:
        yield client


def _assert_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for word in words:
        assert word in message, message


# --- body size and encodings ---


async def test_content_length_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    response = await http.post(PREDICT, content=b" " * (LIMIT + 1))
    _assert_error(response, 413, "too large", str(LIMIT))


async def test_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit(
    http: httpx.AsyncClient,
) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:  # never ends: only the gateway giving up ends the request
            sent += 1
            yield b" " * 10_000

    response = await http.post(PREDICT, content=endless())
    _assert_error(response, 413, "too large")
    assert sent <= LIMIT // 10_000 + 2


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("GZip", gzip.compress)],
)
async def test_compressed_bodies_are_decoded(
    http: httpx.AsyncClient, encoding: str, compress: Any
) -> None:
    plain = await http.post(PREDICT, json=ROWS)
    body = compress(orjson.dumps(ROWS))
    response = await http.post(PREDICT, content=body, headers={"Content-Encoding": encoding})
    assert response.status_code == 200, response.text
    assert response.json() == plain.json()


async def test_multi_member_gzip_is_decoded(http: httpx.AsyncClient) -> None:
    text = orjson.dumps(ROWS)
    body = gzip.compress(text[:10]) + gzip.compress(text[10:])
    response = await http.post(PREDICT, content=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text


async def test_gzip_bomb_is_413_with_bounded_memory(http: httpx.AsyncClient) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(2**20)
    bomb = b"".join(packer.compress(zeros) for _ in range(50)) + packer.flush()
    assert len(bomb) < LIMIT  # 50 MB of zeros in ~50 kB
    tracemalloc.start()
    try:
        response = await http.post(PREDICT, content=bomb, headers={"Content-Encoding": "gzip"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _assert_error(response, 413, "too large")
    assert peak < 10 * 2**20  # inflating it all would take 50 MB


@pytest.mark.parametrize(
    "body",
    [b"not gzip at all", gzip.compress(orjson.dumps(ROWS))[:-12], gzip.compress(b"{}") + b"junk"],
    ids=["garbage", "truncated", "trailing-junk"],
)
async def test_corrupt_gzip_is_400(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post(PREDICT, content=body, headers={"Content-Encoding": "gzip"})
    _assert_error(response, 400, "not valid gzip")


async def test_unknown_encoding_is_415(http: httpx.AsyncClient) -> None:
    response = await http.post(PREDICT, content=b"{}", headers={"Content-Encoding": "br"})
    _assert_error(response, 415, "Content-Encoding", "'br'")


# --- deadlines ---


@pytest.mark.parametrize("value", ["soon", "-1", "0", "inf", "nan", ""])
async def test_malformed_request_timeout_is_400(http: httpx.AsyncClient, value: str) -> None:
    response = await http.post(PREDICT, json=ROWS, headers={"X-Request-Timeout": value})
    _assert_error(response, 400, "X-Request-Timeout", "positive number of seconds")


async def test_valid_request_timeout_is_served(http: httpx.AsyncClient) -> None:
    response = await http.post(PREDICT, json=ROWS, headers={"X-Request-Timeout": "2.5"})
    assert response.status_code == 200, response.text


async def test_body_that_does_not_arrive_in_time_is_408(http: httpx.AsyncClient) -> None:
    async def stalled() -> AsyncIterator[bytes]:
        yield b'{"instances": '
        await asyncio.Event().wait()  # never set: the rest never comes
        yield b"[]}"

    response = await http.post(PREDICT, content=stalled(), headers={"X-Request-Timeout": "0.2"})
    _assert_error(response, 408, "did not arrive within the deadline")


async def _slow_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reports the deadline it was given, or sleeps past it when asked to."""
    context = CALL_CONTEXT.get()
    remaining = context.remaining_seconds(default=-1.0)
    if scope["path"] == "/slow":
        await asyncio.sleep(3600)
    body = orjson.dumps({"remaining": remaining, "request_id": context.request_id})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_deadline_reaches_the_call_context_capped_and_504_when_it_passes() -> None:
    settings = Settings(request_timeout_seconds=7, max_request_timeout_seconds=30)
    edge = EdgeMiddleware(_slow_app, settings)

    async def with_request_id(scope: Scope, receive: Receive, send: Send) -> None:
        """Stands for the observability middleware, which sets the request id first."""
        token = CALL_CONTEXT.set(CallContext(request_id="rid-1"))
        try:
            await edge(scope, receive, send)
        finally:
            CALL_CONTEXT.reset(token)

    transport = httpx.ASGITransport(app=with_request_id)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        default = (await client.get("/")).json()
        assert 6 < default["remaining"] <= 7
        assert default["request_id"] == "rid-1"  # the edge keeps what was set before it
        asked = (await client.get("/", headers={"X-Request-Timeout": "0.5"})).json()
        assert 0 < asked["remaining"] <= 0.5
        capped = (await client.get("/", headers={"X-Request-Timeout": "9999"})).json()
        assert 29 < capped["remaining"] <= 30
        slow = await client.get("/slow", headers={"X-Request-Timeout": "0.1"})
        _assert_error(slow, 504, "did not complete within its deadline")


# --- API keys ---


@pytest.fixture
async def keyed(sklearn_models_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = _settings(sklearn_models_dir, api_keys=["key-one", "key-two"])
    async with gateway_client(settings) as client:
        yield client


async def test_missing_key_is_401_with_www_authenticate(keyed: httpx.AsyncClient) -> None:
    for path in (PREDICT, "/v1/models/iris", "/docs", "/openapi.json", "/nope"):
        response = await keyed.request("POST" if path == PREDICT else "GET", path, json=ROWS)
        _assert_error(response, 401, "Missing API key")
        assert response.headers["www-authenticate"].startswith("Bearer")
    basic = await keyed.post(PREDICT, json=ROWS, headers={"Authorization": "Basic a2V5LW9uZQ=="})
    _assert_error(basic, 401, "Missing API key")


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer key-three"}, {"X-API-Key": "key"}, {"X-API-Key": "key-one-x"}],
)
async def test_wrong_key_is_401(keyed: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await keyed.post(PREDICT, json=ROWS, headers=headers)
    _assert_error(response, 401, "Invalid API key")
    assert "key-" not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer key-one"},
        {"Authorization": "bearer key-two"},
        {"X-API-Key": "key-two"},
        {"X-API-Key": "wrong", "Authorization": "Bearer key-one"},
    ],
)
async def test_right_key_is_served(keyed: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await keyed.post(PREDICT, json=ROWS, headers=headers)
    assert response.status_code == 200, response.text


async def test_probes_and_preflight_need_no_key(keyed: httpx.AsyncClient) -> None:
    assert (await keyed.get("/healthz")).status_code == 200
    assert (await keyed.get("/readyz")).status_code == 200
    preflight = await keyed.options(PREDICT, headers={"Origin": "http://app.example"})
    assert preflight.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_head_on_probes_and_metrics_answers_as_get_without_a_body(
    keyed: httpx.AsyncClient, path: str
) -> None:
    """Open paths stay open for HEAD too (no key here); status and headers are GET's."""
    get, head = await keyed.get(path), await keyed.head(path)
    assert (head.status_code, get.status_code) == (200, 200)
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    if path != "/metrics":  # the metrics change between the two requests
        assert head.headers["content-length"] == str(len(get.content))
    assert (await keyed.head("/v1/models/iris")).status_code == 401  # others still need a key


# --- CORS ---

ORIGIN = "https://app.example"


async def test_cors_allows_listed_origins_only(sklearn_models_dir: Path) -> None:
    settings = _settings(sklearn_models_dir, cors_allow_origins=[ORIGIN], api_keys=["k"])
    async with gateway_client(settings) as client:
        preflight = await client.options(
            PREDICT,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-API-Key, X-Request-Timeout",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        allowed = await client.post(
            PREDICT, json=ROWS, headers={"Origin": ORIGIN, "X-API-Key": "k"}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "Retry-After" in allowed.headers["access-control-expose-headers"]
        denied = await client.post(PREDICT, json=ROWS, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in denied.headers
        # Errors are readable by the allowed page too (a browser needs the header).
        unauthorized = await client.post(PREDICT, json=ROWS, headers={"Origin": ORIGIN})
        assert unauthorized.status_code == 401
        assert unauthorized.headers["access-control-allow-origin"] == ORIGIN


async def test_cors_is_off_by_default(http: httpx.AsyncClient) -> None:
    response = await http.post(PREDICT, json=ROWS, headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = await http.options(PREDICT, headers={"Origin": ORIGIN})
    assert preflight.status_code == 200  # TF Serving's own answer to OPTIONS


# --- load shedding and Retry-After ---


async def test_over_max_concurrent_requests_is_503_then_serves_again(
    sklearn_models_dir: Path,
) -> None:
    settings = _settings(sklearn_models_dir, max_concurrent_requests=1)
    arrived, release = asyncio.Event(), asyncio.Event()

    async def held_body() -> AsyncIterator[bytes]:
        arrived.set()  # the gateway is reading: the request is in flight
        await release.wait()
        yield orjson.dumps(ROWS)

    async with gateway_client(settings) as client:
        held = asyncio.create_task(client.post(PREDICT, content=held_body()))
        await arrived.wait()
        shed = await client.post(PREDICT, json=ROWS)
        _assert_error(shed, 503, "overloaded (1 requests in flight)", "retry later")
        assert shed.headers["retry-after"] == "1"
        assert (await client.get("/healthz")).status_code == 200  # probes are never shed
        release.set()
        assert (await held).status_code == 200
        assert (await client.post(PREDICT, json=ROWS)).status_code == 200


async def test_unavailable_backend_503_carries_retry_after() -> None:
    model = ModelConfig(
        name="tf", platform="tensorflow", base_path="/nowhere", target=f"127.0.0.1:{free_port()}"
    )
    settings = Settings(models=[model], tf_retry_max_attempts=1)
    async with gateway_client(settings) as client:
        response = await client.post("/v1/models/tf:predict", json={"instances": [1.0]})
    _assert_error(response, 503, "unavailable")
    assert response.headers["retry-after"] == "1"
