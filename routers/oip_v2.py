"""The Open Inference Protocol's REST API (`/v2...`): transcode to the data plane and back.

GET  /v2                                   server metadata
GET  /v2/health/live, /v2/health/ready     server liveness and readiness
GET  /v2/models/<name>[/versions/<v>]      model metadata
GET  /v2/models/<name>[/versions/<v>]/ready
POST /v2/models/<name>[/versions/<v>]/infer

A v2 version is a string: digits address a version number, anything else a version
label (v2 has no spelling of its own for labels). A model not ready, or a server not
ready, answers 400 with `"ready": false`, as the protocol asks (4xx means false).
Errors are `{"error": "..."}` with TF Serving's status for each code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.types import Receive, Scope, Send

from clients.types import ModelSpec, ModelState, ServingError
from gateway.dataplane import DataPlane, DecodedInputs, SignatureLookup
from gateway.oip.decode import DecodedInfer, decode_infer
from gateway.oip.encode import encode_infer
from gateway.oip.model import V2Model, metadata_document, v2_model
from gateway.registry import PlatformKind
from gateway.serving import Serving
from routers import schemas, v2_schemas
from routers.asgi_endpoint import asgi_endpoint
from routers.body import request_body
from routers.errors import HTTP_STATUS_OF_CODE, JSON, send_json, send_json_error
from routers.request_record import UNKNOWN_MODEL, RequestRecord, record_of

router = APIRouter(tags=["Open Inference Protocol (v2)"])

BINARY_EXTENSION = "binary_tensor_data"
HEADER_LENGTH = b"inference-header-content-length"
HEALTH_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
_MODEL_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?/?")
_OCTET_STREAM = b"application/octet-stream"


@dataclass(frozen=True)
class V2Route:
    """What a /v2 URL asks for."""

    kind: str  # server_metadata, live, ready, model_metadata, model_ready, infer
    method: str  # the HTTP method it takes
    spec: ModelSpec | None = None


def parse_v2_path(path: str) -> V2Route | None:
    """The route of a (decoded) /v2 path, None when it names none."""
    if path in ("/v2", "/v2/"):
        return V2Route("server_metadata", "GET")
    if path == "/v2/health/live":
        return V2Route("live", "GET")
    if path == "/v2/health/ready":
        return V2Route("ready", "GET")
    match = _MODEL_PATH.fullmatch(path)
    if match is None:
        return None
    name, version, verb = match.groups()
    spec = ModelSpec(name)
    if version is not None:
        spec = (
            ModelSpec(name, version=int(version))
            if version.isdigit()
            else ModelSpec(name, label=version)
        )
    if verb == "/infer":
        return V2Route("infer", "POST", spec)
    if verb == "/ready":
        return V2Route("model_ready", "GET", spec)
    return V2Route("model_metadata", "GET", spec)


async def serve_v2(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer any /v2 request (an ASGI app; `GatewayApp` calls it)."""
    serving: Serving = scope["app"].state.serving
    record = record_of(scope)
    route = parse_v2_path(scope["path"])
    if route is None:
        await send_json_error(send, 404, f"Not found: {scope['path']}. See GET /v2 and /docs")
        return
    method = "GET" if scope["method"] == "HEAD" else scope["method"]
    if method != route.method:
        allow = b"GET, HEAD" if route.method == "GET" else route.method.encode()
        message = f"{scope['path']} takes {route.method} only"
        await send_json_error(send, 405, message, ((b"allow", allow),))
        return
    record.start()
    if route.spec is not None:
        record.verb = route.kind
        known = serving.dataplane.registry.find(route.spec.name) is not None
        record.model = route.spec.name if known else UNKNOWN_MODEL
    try:
        if route.kind == "infer":
            body = await request_body(scope, receive)
            record.start()  # receiving the body is not parsing
            await _infer(serving, route, body, scope, record, send)
            return
        status, content = await _ANSWERS[route.kind](scope, serving.dataplane, route)
    except ServingError as error:
        record.rendered()
        await send_json_error(send, HTTP_STATUS_OF_CODE.get(error.code, 500), error.message)
        return
    record.rendered()
    await send_json(send, status, orjson.dumps(content))


async def _infer(
    serving: Serving, route: V2Route, body: bytes, scope: Scope, record: RequestRecord, send: Send
) -> None:
    assert route.spec is not None
    entry = serving.dataplane.registry.find(route.spec.name)
    header_length = _header(scope, HEADER_LENGTH)
    decoder = _InferDecoder(body, header_length, None if entry is None else entry.kind, serving)
    prediction = await serving.dataplane.run_predict(route.spec, decoder, record)
    decoded, model = decoder.decoded, decoder.model
    assert decoded is not None and model is not None  # set by a decode that succeeded
    outputs = prediction.outputs
    encoded = await serving.offloader.run(
        sum(array.nbytes for array in outputs.values()),
        encode_infer,
        model.name,
        model.version,
        decoded.request_id,
        outputs,
        model.signatures[decoded.signature_name],
        decoded.outputs,
        decoded.binary_outputs,
    )
    record.rendered()
    if encoded.header_length is None:
        await send_json(send, 200, encoded.body)
        return
    headers = [
        (b"content-type", _OCTET_STREAM),
        (b"content-length", b"%d" % len(encoded.body)),
        (HEADER_LENGTH, b"%d" % encoded.header_length),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": encoded.body})


class _InferDecoder:
    """Decodes a v2 infer body for `DataPlane.run_predict`, in a worker process when big.

    The model's signatures are looked up first (an unknown model is a 404 before the body
    is read, as in Triton), then the body is decoded against them in one call.
    """

    def __init__(
        self,
        body: bytes,
        header_length: bytes | None,
        kind: PlatformKind | None,
        serving: Serving,
    ) -> None:
        self._body = body
        self._header_length = header_length
        self._kind = kind  # None: an unknown model, which the lookup refuses first
        self._serving = serving
        self.decoded: DecodedInfer | None = None
        self.model: V2Model | None = None

    async def __call__(self, lookup: SignatureLookup) -> DecodedInputs:
        metadata = await lookup.metadata()
        assert self._kind is not None  # the lookup found the model
        self.model = v2_model(metadata, self._kind)
        serving = self._serving
        self.decoded = await serving.offloader.run(
            len(self._body),
            decode_infer,
            self._body,
            self._header_length,
            self.model,
            serving.limits,
        )
        resolved = await lookup.signature(self.decoded.signature_name)
        return DecodedInputs(resolved, self.decoded.tensors)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _server_metadata(
    scope: Scope, dataplane: DataPlane, route: V2Route
) -> tuple[int, dict[str, Any]]:
    app = scope["app"]
    return 200, {"name": "tfs-gateway", "version": app.version, "extensions": [BINARY_EXTENSION]}


async def _live(scope: Scope, dataplane: DataPlane, route: V2Route) -> tuple[int, dict[str, Any]]:
    return 200, {"live": True}


async def _ready(scope: Scope, dataplane: DataPlane, route: V2Route) -> tuple[int, dict[str, Any]]:
    if scope["app"].state.shutting_down:
        return 400, {"ready": False, "error": "Not ready: shutting down"}
    problems = dataplane.unready_models()
    if problems:
        names = ", ".join(sorted(problems))
        return 400, {"ready": False, "error": f"Not ready: no version available for {names}"}
    return 200, {"ready": True}


async def _model_metadata(
    scope: Scope, dataplane: DataPlane, route: V2Route
) -> tuple[int, dict[str, Any]]:
    assert route.spec is not None
    metadata = await dataplane.metadata(route.spec)
    entry = dataplane.registry.find(route.spec.name)
    assert entry is not None  # metadata found it
    statuses = await dataplane.status(route.spec.name, None)
    versions = sorted(s.version for s in statuses if s.state == ModelState.AVAILABLE)
    record_of(scope).succeeded(str(metadata.version), "")
    return 200, metadata_document(v2_model(metadata, entry.kind), versions)


async def _model_ready(
    scope: Scope, dataplane: DataPlane, route: V2Route
) -> tuple[int, dict[str, Any]]:
    spec = route.spec
    assert spec is not None
    name = spec.name
    if spec.label is not None:  # a label is ready when it resolves to an available version
        spec = ModelSpec(name, (await dataplane.metadata(spec)).version)
    statuses = await dataplane.status(name, spec.version)
    available = [s.version for s in statuses if s.state == ModelState.AVAILABLE]
    shown = name if spec.version is None else f"{name} version {spec.version}"
    if not available:
        states = ", ".join(f"{s.version}: {s.state.name}" for s in statuses) or "no versions"
        return 400, {
            "name": name,
            "ready": False,
            "error": f"Model {shown} is not ready ({states})",
        }
    record_of(scope).succeeded(str(max(available)), "")
    return 200, {"name": name, "ready": True}


_ANSWERS = {
    "server_metadata": _server_metadata,
    "live": _live,
    "ready": _ready,
    "model_metadata": _model_metadata,
    "model_ready": _model_ready,
}


# ---- Documented routes (all served by serve_v2) -------------------------------------

_V2_ENDPOINT = asgi_endpoint(serve_v2)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorResponse, "description": text}
    for code, text in (
        (400, "Malformed request, or input that does not fit the model"),
        (404, "Unknown model or version"),
        (503, "Backend unavailable"),
        (504, "Deadline exceeded"),
    )
}
_VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "Version number, or a version label.",
}
_READY_PATHS = frozenset({"/v2/health/ready"})
_NAME = {"name": "model_name", "in": "path", "required": True, "schema": {"type": "string"}}


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `#/$defs/...` references replaced by the definitions: inside
    /openapi.json such a reference would resolve against the document's root, which has
    no `$defs` (Swagger UI and schemathesis could not follow it)."""
    definitions = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/$defs/"):
                return inline(definitions[reference.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items() if key != "$defs"}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


def _register_documented_routes() -> None:
    server_routes: tuple[tuple[str, type[Any], str], ...] = (
        ("/v2", v2_schemas.ServerMetadataResponse, "Server metadata"),
        ("/v2/health/live", v2_schemas.LiveResponse, "Server liveness"),
        ("/v2/health/ready", v2_schemas.ReadyResponse, "Server readiness"),
    )
    not_ready: dict[int | str, dict[str, Any]] = {
        400: {"model": v2_schemas.ReadyResponse, "description": "Not ready (ready: false)"}
    }
    for path, response, summary in server_routes:
        router.add_api_route(
            path,
            _V2_ENDPOINT,
            methods=["GET"],
            summary=summary,
            responses={200: {"model": response}, **(not_ready if path in _READY_PATHS else {})},
        )
    for suffix, parameters in (("", [_NAME]), ("/versions/{version}", [_NAME, _VERSION])):
        base = "/v2/models/{model_name}" + suffix
        router.add_api_route(
            base,
            _V2_ENDPOINT,
            methods=["GET"],
            summary="Model metadata",
            responses={200: {"model": v2_schemas.ModelMetadataResponse}, **_ERRORS},
            openapi_extra={"parameters": parameters},
        )
        router.add_api_route(
            f"{base}/ready",
            _V2_ENDPOINT,
            methods=["GET"],
            summary="Model readiness",
            responses={200: {"model": v2_schemas.ModelReadyResponse}, **_ERRORS},
            openapi_extra={"parameters": parameters},
        )
        router.add_api_route(
            f"{base}/infer",
            _V2_ENDPOINT,
            methods=["POST"],
            summary="Inference",
            responses={200: {"model": v2_schemas.InferResponse}, **_ERRORS},
            openapi_extra={
                "parameters": parameters,
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": _inlined(v2_schemas.InferRequest.model_json_schema())},
                    },
                },
            },
        )


_register_documented_routes()
