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
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from clients.types import ExampleBatch, ModelSpec, ServingError
from gateway import codec
from gateway.codec import JsonLimits, RequestFormat
from gateway.codec.decode_whole import check_body, decode_predict_whole
from gateway.codec.encode_model import metadata_json, status_json
from gateway.dataplane import DataPlane, DecodedInputs, SignatureLookup
from gateway.offload import Offloader
from gateway.serving import Serving
from routers import schemas
from routers.asgi_endpoint import asgi_endpoint
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
    serving: Serving = scope["app"].state.serving
    dataplane = serving.dataplane
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
            content = await _VERBS[route.kind](serving, route, body, record)
    except ServingError as error:
        record.rendered()
        status = HTTP_STATUS_OF_CODE.get(error.code, 500)
        await send_json_error(send, status, error.message)
        return
    record.rendered()
    await send_json(send, 200, content)


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


async def _predict(serving: Serving, route: V1Route, body: bytes, record: RequestRecord) -> bytes:
    offloader = serving.offloader
    decoder = _JsonPredictDecoder(body, serving.limits, offloader)
    prediction = await serving.dataplane.run_predict(_spec(route), decoder, record)
    assert decoder.request_format is not None  # set by a decode that succeeded
    outputs = prediction.outputs
    size = sum(array.nbytes for array in outputs.values())
    return await offloader.run(size, codec.encode_predict, outputs, decoder.request_format)


class _JsonPredictDecoder:
    """Decodes a TF Serving JSON predict body for `DataPlane.run_predict`.

    A small body is parsed on the event loop, then its signature looked up and its tensors
    decoded. A big one (see `gateway.offload`) goes to a worker process once, with the
    inputs of every signature of the addressed version.
    """

    def __init__(self, body: bytes, limits: JsonLimits, offloader: Offloader) -> None:
        self._body = body
        self._limits = limits
        self._offloader = offloader
        self.request_format: RequestFormat | None = None

    async def __call__(self, lookup: SignatureLookup) -> DecodedInputs:
        body, limits = self._body, self._limits
        if not self._offloader.heavy(len(body)):
            document = codec.parse_predict(body, limits)
            resolved = await lookup.signature(document.signature_name)
            tensors, self.request_format = codec.decode_predict_document(
                document, resolved.signature.inputs, limits
            )
            return DecodedInputs(resolved, tensors)
        try:
            metadata = await lookup.metadata()
        except ServingError:
            await self._offloader.run(len(body), check_body, body, limits)  # JSON errors first
            raise
        candidates = {name: sig.inputs for name, sig in metadata.signatures.items()}
        whole = await self._offloader.run(len(body), decode_predict_whole, body, candidates, limits)
        resolved = await lookup.signature(whole.signature_name)  # raises for an unknown one
        assert whole.tensors is not None
        self.request_format = whole.request_format
        return DecodedInputs(resolved, whole.tensors)


async def _classify(serving: Serving, route: V1Route, body: bytes, record: RequestRecord) -> bytes:
    spec, batch = _decode_examples(route, body, record, serving.limits)
    return codec.encode_classify(await serving.dataplane.run_classify(spec, batch, record))


async def _regress(serving: Serving, route: V1Route, body: bytes, record: RequestRecord) -> bytes:
    spec, batch = _decode_examples(route, body, record, serving.limits)
    return codec.encode_regress(await serving.dataplane.run_regress(spec, batch, record))


def _decode_examples(
    route: V1Route, body: bytes, record: RequestRecord, limits: JsonLimits
) -> tuple[ModelSpec, ExampleBatch]:
    """A classify/regress body's model spec (with its signature) and examples."""
    document = codec.parse_body(body, limits)
    spec = _spec(route, codec.signature_name_of(document))
    batch = codec.decode_examples(document, limits)
    record.parsed()
    return spec, batch


_Verb = Callable[[Serving, V1Route, bytes, RequestRecord], Awaitable[bytes]]
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


_V1_ENDPOINT = asgi_endpoint(serve_v1)


def _register_documented_routes() -> None:
    router.add_api_route(
        "/v1/models",
        _V1_ENDPOINT,
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
                _V1_ENDPOINT,
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
            _V1_ENDPOINT,
            methods=["GET"],
            summary="Model version status",
            responses={200: {"model": schemas.ModelStatusResponse}, **_ERRORS},
            openapi_extra={"parameters": parameters},
        )
        router.add_api_route(
            f"{base}/metadata",
            _V1_ENDPOINT,
            methods=["GET"],
            summary="Model metadata (signature defs)",
            responses={200: {"model": schemas.ModelMetadataResponse}, **_ERRORS},
            openapi_extra={"parameters": parameters},
        )


_register_documented_routes()
