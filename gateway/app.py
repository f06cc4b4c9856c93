"""The application factory: settings in, a FastAPI app out; backends live in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from clients.types import ServingError
from gateway.dataplane import DataPlane
from gateway.registry import ModelRegistry, build_registry
from gateway.settings import Settings
from routers import health, tfserving_v1
from routers.errors import handle_serving_error, handle_unexpected_error, json_error

logger = logging.getLogger(__name__)

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
        announcer = asyncio.create_task(_announce_embedded(registry, settings))
        try:
            yield
        finally:
            announcer.cancel()
            with suppress(asyncio.CancelledError):
                await announcer
            await registry.close()

    app = FastAPI(
        title="TF Serving REST gateway",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(health.router)
    app.include_router(tfserving_v1.router)
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


async def _fallback(request: Request) -> Response:
    """Any other /v1/ path is TF Serving's 400 "Malformed request"; anything else a 404."""
    if request.url.path.lower().startswith("/v1/"):
        return await tfserving_v1.v1_endpoint(request)
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
