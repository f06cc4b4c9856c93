"""The application factory: settings in, a FastAPI app out; backends live in the lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from clients.types import ServingError
from gateway.codec import JsonLimits
from gateway.dataplane import DataPlane
from gateway.offload import Offloader
from gateway.registry import ModelRegistry, build_registry
from gateway.serving import Serving
from gateway.settings import Settings
from routers import backends, health, metrics, model_openapi, oip_v2, tfserving_v1
from routers.edge import EdgeMiddleware
from routers.errors import handle_serving_error, handle_unexpected_error, json_error
from routers.observability import ObservabilityMiddleware

logger = logging.getLogger(__name__)

# What the codec worker processes import before their first job.
CODEC_MODULES = ("gateway.codec", "gateway.codec.decode_whole")

CORS_METHODS = ["GET", "POST", "OPTIONS"]
CORS_REQUEST_HEADERS = [
    "Content-Type",
    "Content-Encoding",
    "Authorization",
    "X-API-Key",
    "X-Request-ID",
    "X-Request-Timeout",
]
CORS_EXPOSED_HEADERS = ["X-Request-ID", "Server-Timing", "Retry-After"]

_DESCRIPTION = """
TensorFlow Serving's REST API for TensorFlow models (forwarded over gRPC to
TensorFlow Serving) and scikit-learn models (served in-process), on the same URLs
with the same JSON formats. An existing TF Serving REST client works unchanged.
"""


def create_app(settings: Settings) -> FastAPI:
    """Build the gateway for `settings`; backends start and stop with the app's lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = build_registry(settings)
        await registry.start()
        app.state.registry = registry
        app.state.dataplane = DataPlane(
            registry,
            max_concurrent_per_model=settings.max_concurrent_per_model,
            timeout_seconds=settings.request_timeout_seconds,
        )
        offloader = Offloader(settings.codec_processes, settings.codec_offload_bytes)
        app.state.serving = Serving(app.state.dataplane, app.state.json_limits, offloader)
        announcer = asyncio.create_task(_announce_embedded(registry, settings))
        warming = asyncio.create_task(offloader.warm_up(CODEC_MODULES))
        # Everything loaded so far (libraries, models) lives as long as the process: keep it
        # out of the garbage collector's full passes, which otherwise scan it all and show
        # up as tail latency.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            for task in (announcer, warming):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await registry.close()
            offloader.close()

    app = GatewayApp(
        settings,
        title="TF Serving REST gateway",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
        openapi_url=None,  # these three are served by model_openapi.install (per-model
        docs_url=None,  # paths, local assets)
        redoc_url=None,
        telemetry={"tracing": False},  # ObservabilityMiddleware traces every request itself
    )
    app.state.settings = settings
    app.state.json_limits = JsonLimits.from_settings(settings)  # the codec's input limits
    app.state.shutting_down = False  # see begin_shutdown
    app.include_router(health.router)
    app.include_router(backends.router)
    app.include_router(metrics.router)
    app.include_router(tfserving_v1.router)
    app.include_router(oip_v2.router)
    model_openapi.install(app)
    app.add_api_route(
        "/{path:path}",
        _fallback,
        methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"],
        include_in_schema=False,
    )
    app.add_exception_handler(ServingError, handle_serving_error)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(Exception, handle_unexpected_error)
    return app


class GatewayApp(FastAPI):
    """FastAPI for the documented routes, behind the gateway's own middleware and fast path.

    HTTP requests pass observability (outermost), CORS (if configured) and the edge
    (shedding, auth, deadline, body limits); then each protocol's requests (/v1/: TF
    Serving's API, /v2: the Open Inference Protocol) go straight to its ASGI app, which
    parses its own paths, and the rest to FastAPI's router. The shortcut skips FastAPI's
    routing and per-route machinery: half of the gateway's own time per predict when
    measured. The protocols' routes stay declared for /docs.
    """

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        chain: ASGIApp = EdgeMiddleware(self._dispatch, settings=settings)
        if settings.cors_allow_origins:
            chain = CORSMiddleware(
                chain,
                allow_origins=settings.cors_allow_origins,
                allow_methods=CORS_METHODS,
                allow_headers=CORS_REQUEST_HEADERS,
                expose_headers=CORS_EXPOSED_HEADERS,
            )
        self._front = ObservabilityMiddleware(chain, settings=settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """HTTP through the gateway's chain; lifespan events to FastAPI."""
        if scope["type"] == "http":
            scope["app"] = self
            await self._front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path[:4].lower() == "/v1/":  # TF Serving matches its paths ignoring case
            await tfserving_v1.serve_v1(scope, receive, send)
        elif path[:4] == "/v2/" or path == "/v2":
            await oip_v2.serve_v2(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def begin_shutdown(app: FastAPI) -> None:
    """The server is stopping: /readyz answers 503 from now on (gateway.server calls this)."""
    app.state.shutting_down = True


async def _fallback(request: Request) -> Response:
    """Paths outside /v1/ (which `GatewayApp` answers itself) that match no route: a 404."""
    return json_error(404, f"Not found: {request.url.path}. The API lives under /v1/models/")


async def _http_exception(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return json_error(error.status_code, str(error.detail))


async def _announce_embedded(registry: ModelRegistry, settings: Settings) -> None:
    """Log once the embedded TF backend listens, or that it failed to."""
    embedded = registry.embedded
    if embedded is None:
        return
    if await embedded.wait_until_listening(settings.embedded_start_timeout_seconds):
        logger.info("embedded TF-Serving-compatible backend is serving on %s", embedded.target)
    else:
        logger.error(
            "embedded TF-Serving-compatible backend did not start within %g s; "
            "TensorFlow models answer 503 until it does",
            settings.embedded_start_timeout_seconds,
        )
