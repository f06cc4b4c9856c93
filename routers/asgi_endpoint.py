"""A FastAPI endpoint that is a raw ASGI app: the documented routes of each protocol.

`GatewayApp` sends /v1/ and /v2 requests to their protocol's ASGI app before FastAPI's
router; the routes declared with this endpoint give `/docs` its paths and serve the same
way in an app that routes through FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send


def asgi_endpoint(app: ASGIApp) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint whose response is whatever `app` sends."""

    async def endpoint(request: Request) -> Response:
        return _AsgiResponse(app)

    return endpoint


class _AsgiResponse(Response):
    """A response that is whatever the ASGI app `app` sends."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__()
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
