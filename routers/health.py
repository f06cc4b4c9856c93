"""Kubernetes probes: liveness (the process answers) and readiness (every model can serve,
and the server is not shutting down). Both answer HEAD as GET, without the body."""

from __future__ import annotations

import re

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.dataplane import DataPlane
from routers.errors import JSON

router = APIRouter(tags=["Health"])

# /readyz stays open when API keys are set: it must not tell strangers where files live.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/[^\s'\",;]+")


def as_get(request: Request, response: Response) -> Response:
    """`response`; for HEAD, its status and headers (Content-Length included) without the
    body, as RFC 9110 section 9.3.2 asks (uvicorn drops a HEAD body itself; not every
    server in front of the app does)."""
    if request.method != "HEAD":
        return response
    return Response(status_code=response.status_code, headers=dict(response.headers))


@router.get("/healthz", summary="Liveness: the gateway process is up")
@router.head("/healthz", include_in_schema=False)
async def liveness(request: Request) -> Response:
    """Always 200 while the event loop runs."""
    return as_get(request, Response(orjson.dumps({"status": "alive"}), media_type=JSON))


@router.get(
    "/readyz",
    summary="Readiness: every configured model has an AVAILABLE version",
    responses={503: {"description": "Some model cannot serve; the body names it and why"}},
)
@router.head("/readyz", include_in_schema=False)
async def readiness(request: Request) -> Response:
    """200 when every model has an AVAILABLE version, else 503 naming each one that has not.

    Also 503 from the moment the server is told to stop (SIGTERM), so a load balancer
    stops sending while in-flight requests finish.
    """
    return as_get(request, _readiness(request))


def _readiness(request: Request) -> Response:
    if request.app.state.shutting_down:
        body = {"error": "Not ready: shutting down", "models": {}}
        return Response(orjson.dumps(body), status_code=503, media_type=JSON)
    dataplane: DataPlane = request.app.state.dataplane
    problems = {
        name: _ABSOLUTE_PATH.sub("<path>", reason) + f" (details: GET /v1/models/{name})"
        for name, reason in dataplane.unready_models().items()
    }
    if not problems:
        return Response(orjson.dumps({"status": "ready"}), media_type=JSON)
    summary = "; ".join(f"{name}: {reason}" for name, reason in problems.items())
    body = {"error": f"Not ready: {summary}", "models": problems}
    return Response(orjson.dumps(body), status_code=503, media_type=JSON)
