"""TF Serving's REST API (`/v1/...`): transcode JSON to the data plane and back.

Every /v1/ request goes through `serve_v1`, which matches TF Serving's grammar on
the raw path itself (names may hold encoded '/' and ':'; the verb is case-sensitive).
The routes declared here give `/docs` its paths and schemas; a catch-all in
`gateway.app` sends every other /v1/ path to the same endpoint, so malformed paths
get TF Serving's 400 rather than a framework 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from clients.types import DEFAULT_SIGNATURE, ExampleBatch, ModelSpec, ServingError
from gateway import codec
from gateway.codec import JsonLimits
from gateway.codec.encode_model import metadata_json, status_json
from gateway.dataplane import DataPlane
from routers import schemas
from routers.body import request_body
from routers.errors import HTTP_STATUS_OF_CODE, JSON, send_json, send_json_error
from routers.request_record import UNKNOWN_MODEL, RequestRecord, record_of
from routers.v1_paths import V1Route, parse_v1_path

router = APIRouter(tags=["TensorFlow Serving REST API (v1)"])
_Results = TypeVar("_Results")


async def serve_v1(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer any /v1/ request as TF Serving would (an ASGI app; `GatewayApp` calls it).

    The answer goes out as two raw ASGI messages: a starlette `Response` per request
    would cost more than the rest of the routing here.
    """
    if scope["method"] == "OPTIONS":
        await _options(scope)(scope, receive, send)
        return
    dataplane: DataPlane = scope["app"].state.dataplane
    record = record_of(scope)
    record.verb = "malformed"  # until the path parses
    record.start()
    try:
        route = parse_v1_path(scope["method"], raw_path(scope))
        record.verb = route.kind
        if route.kind == "list":
            record.rendered()
            await send_json(send, 200, _model_list(dataplane))
            return
        known = dataplane.registry.find(_name(route)) is not None
        record.model = _name(route) if known else UNKNOWN_MODEL
        if route.kind == "status":
            statuses = await dataplane.status(_name(route), route.version)
            record.called()
            record.succeeded("" if route.version is None else str(route.version), "")
            content = status_json(statuses)
        elif route.kind == "metadata":
            metadata = await dataplane.metadata(_spec(route))
            record.called()
            record.succeeded(str(metadata.version), "")
            content = metadata_json(metadata)
        else:
            body = await request_body(scope, receive)
            record.start()  # the time spent receiving the body is not parsing
            limits: JsonLimits = scope["app"].state.json_limits
            content = await _VERBS[route.kind](dataplane, route, body, record, limits)
    except ServingError as error:
        record.rendered()
        status = HTTP_STATUS_OF_CODE.get(error.code, 500)
        await send_json_error(send, status, error.message)
        return
    record.rendered()
    await send_json(send, 200, content)


async def v1_endpoint(request: Request) -> Response:
    """The documented /v1/ routes' endpoint: `serve_v1` as a FastAPI endpoint.

    `GatewayApp` sends /v1/ requests to `serve_v1` before FastAPI's router; this serves
    them the same way in an app that routes /v1/ through FastAPI.
    """
    return _AsgiResponse(serve_v1)


class _AsgiResponse(Response):
    """A response that is whatever the ASGI app `app` sends."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__()
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def _model_list(dataplane: DataPlane) -> bytes:
    """`{"models": [<name>, ...]}` (KServe V1's list models), in configuration order."""
    return orjson.dumps({"models": [entry.name for entry in dataplane.registry.entries]})


def raw_path(scope: MutableMapping[str, Any]) -> str:
    """The still-encoded path plus `?query`, as TF Serving matches it (R2, R6)."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    path, _, query_in_path = raw.partition(b"?")
    query: bytes = scope.get("query_string") or query_in_path
    text = path.decode("latin-1")
    return f"{text}?{query.decode('latin-1')}" if query else text


def _options(scope: Scope) -> Response:
    """CORS preflight as TF Serving answers it: 200 when Origin names an http(s) origin."""
    origin = Headers(scope=scope).get("origin", "")
    ok = "http://" in origin or "https://" in origin
    return Response(status_code=200 if ok else 400)


async def _predict(
    dataplane: DataPlane, route: V1Route, body: bytes, record: RequestRecord, limits: JsonLimits
) -> bytes:
    document = codec.parse_body(body, limits)
    spec = _spec(route, codec.signature_name_of(document))
    record.parsed()
    resolved = await dataplane.resolve_signature(spec)
    record.called()
    tensors, request_format = codec.decode_predict(document, resolved.signature.inputs, limits)
    record.parsed()
    outputs = await dataplane.predict(resolved, tensors, spec)
    record.called()
    record.succeeded(str(resolved.spec.version), spec.signature_name or DEFAULT_SIGNATURE)
    return codec.encode_predict(outputs, request_format)


async def _classify(
    dataplane: DataPlane, route: V1Route, body: bytes, record: RequestRecord, limits: JsonLimits
) -> bytes:
    results = await _examples(dataplane.classify, route, body, record, limits)
    return codec.encode_classify(results)


async def _regress(
    dataplane: DataPlane, route: V1Route, body: bytes, record: RequestRecord, limits: JsonLimits
) -> bytes:
    results = await _examples(dataplane.regress, route, body, record, limits)
    return codec.encode_regress(results)


async def _examples(
    call: Callable[[ModelSpec, ExampleBatch], Awaitable[_Results]],
    route: V1Route,
    body: bytes,
    record: RequestRecord,
    limits: JsonLimits,
) -> _Results:
    """Decode a classify/regress body, run `call` on its examples, record the labels."""
    document = codec.parse_body(body, limits)
    spec = _spec(route, codec.signature_name_of(document))
    batch = codec.decode_examples(document, limits)
    record.parsed()
    results = await call(spec, batch)
    record.called()
    record.succeeded(_addressed_version(route), spec.signature_name or DEFAULT_SIGNATURE)
    return results


def _addressed_version(route: V1Route) -> str:
    """The version label of an answered classify/regress: as the caller addressed it."""
    if route.version is not None:
        return str(route.version)
    return "latest" if route.label is None else f"label:{route.label}"


_Verb = Callable[[DataPlane, V1Route, bytes, RequestRecord, JsonLimits], Awaitable[bytes]]
_VERBS: dict[str, _Verb] = {
    "predict": _predict,
    "classify": _classify,
    "regress": _regress,
}


def _name(route: V1Route) -> str:
    assert route.name is not None  # parse_v1_path rejects a missing name
    return route.name


def _spec(route: V1Route, signature_name: str = "") -> ModelSpec:
    return ModelSpec(_name(route), route.version, route.label, signature_name)


# ---- Documented routes (all served by serve_v1) -------------------------------------

_ADDRESSING = {
    "": [],
    "/versions/{version}": [("version", "integer", "Model version number.")],
    "/labels/{label}": [("label", "string", "Version label from the model's config.")],
}
_VERB_DOCS: dict[str, tuple[type[BaseModel], type[BaseModel], str]] = {
    "predict": (schemas.PredictRequest, schemas.PredictResponse, "Predict"),
    "classify": (schemas.ExamplesRequest, schemas.ClassifyResponse, "Classify tf.Examples"),
    "regress": (schemas.ExamplesRequest, schemas.RegressResponse, "Regress tf.Examples"),
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorResponse, "description": text}
    for code, text in (
        (400, "Malformed request, body or input"),
        (404, "Unknown model or version"),
        (503, "Backend unavailable"),
        (504, "Backend deadline exceeded"),
    )
}


def _parameters(extra: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    params = [("model_name", "string", "Model name (percent-encode '/' and ':')."), *extra]
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": kind}, "description": doc}
        for name, kind, doc in params
    ]


def _register_documented_routes() -> None:
    router.add_api_route(
        "/v1/models",
        v1_endpoint,
        methods=["GET"],
        summary="List the configured models (KServe V1; TF Serving answers 400)",
        responses={200: {"model": schemas.ModelListResponse}},
    )
    for suffix, extra in _ADDRESSING.items():
        base = "/v1/models/{model_name}" + suffix
        parameters = _parameters(extra)
        for verb, (request_model, response_model, summary) in _VERB_DOCS.items():
            router.add_api_route(
                f"{base}:{verb}",
                v1_endpoint,
                methods=["POST"],
                summary=f"{summary}{' (' + suffix.split('/')[1] + ')' if suffix else ''}",
                responses={200: {"model": response_model}, **_ERRORS},
                openapi_extra={
                    "parameters": parameters,
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": request_model.model_json_schema()}},
                    },
                },
            )
        router.add_api_route(
            base,
            v1_endpoint,
            methods=["GET"],
            summary="Model version status",
            responses={200: {"model": schemas.ModelStatusResponse}, **_ERRORS},
            openapi_extra={"parameters": parameters},
        )
        router.add_api_route(
            f"{base}/metadata",
            v1_endpoint,
            methods=["GET"],
            summary="Model metadata (signature defs)",
            responses={200: {"model": schemas.ModelMetadataResponse}, **_ERRORS},
            openapi_extra={"parameters": parameters},
        )


_register_documented_routes()
