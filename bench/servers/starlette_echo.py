"""Starlette echo: parses the JSON body and returns it (a framework ceiling).

Run: ``uvicorn bench.servers.starlette_echo:app --loop uvloop --http httptools --no-access-log``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def echo(request: Request) -> JSONResponse:
    """Return the request's JSON."""
    return JSONResponse(await request.json())


app = Starlette(routes=[Route("/{path:path}", echo, methods=["POST"])])
