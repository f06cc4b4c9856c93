"""Per-model API docs: OpenAPI paths built from each model's signatures, and offline /docs.

`/openapi.json` is the app's static spec (the generic `/v1/models/{model_name}...` paths)
plus, for every configured model that can answer now, its own paths (e.g.
`/v1/models/iris:predict`) whose request schema comes from the model's current metadata:
each tensor's dtype becomes a JSON type (int ranges included), fixed dimensions become
`minItems`/`maxItems`, -1 dimensions are unbounded, and both TF Serving request formats
(row `instances`, columnar `inputs`) are described with `signature_name`. Every such path
carries an example request that works as it is (a batch of one where the batch size is
free). The spec is built per request, so new versions and signatures show up at once;
models whose backend cannot answer are left out, and the spec's description says so.

A protocol adds its own per-model paths with `register_model_paths(builder)`: the builder
takes a model's name and `ModelMetadata` and returns OpenAPI path items keyed by path
(see `tf_serving_v1_paths`, and the schema helpers `tensor_schema` / `example_tensor`).

`/docs` (Swagger UI) and `/redoc` load their JavaScript, CSS and images from this server:
the files come from the `fastapi-standalone-docs` package (its ReDoc build loads its logo
from beside the page instead of a CDN), so the pages work with no internet.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.resources
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles

from clients.dtypes import NUMPY_OF
from clients.types import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    PREDICT_METHOD,
    REGRESS_METHOD,
    DType,
    ModelMetadata,
    ModelSpec,
    ServingError,
    Signature,
    TensorSpec,
)
from gateway.codec.decode_fast import FLOATS, RANGES
from gateway.dataplane import DataPlane

logger = logging.getLogger(__name__)

JsonSchema = dict[str, Any]
PathItems = dict[str, dict[str, Any]]
ModelPathsBuilder = Callable[[str, ModelMetadata], PathItems]
"""A protocol's per-model paths: (model name, its metadata) -> {path: OpenAPI path item}."""

DOCS_ASSETS_URL = "/docs/assets"
METADATA_TIMEOUT_SECONDS = 5.0  # per model; a slow backend leaves its model out of the spec
_JSON = "application/json"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# tf.Example holds floats as float32: larger values become infinite
_FEATURE_NUMBER: JsonSchema = {
    "type": "number",
    "format": "float",
    "minimum": -_FLOAT32_MAX,
    "maximum": _FLOAT32_MAX,
}
_B64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$"
_B64_OBJECT: JsonSchema = {
    "type": "object",
    "description": "Binary data, base64-encoded.",
    "properties": {"b64": {"type": "string", "contentEncoding": "base64", "pattern": _B64_PATTERN}},
    "required": ["b64"],
    "additionalProperties": False,
}
_ERROR_RESPONSE: dict[str, Any] = {
    "content": {
        _JSON: {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    }
}
_ERRORS = {
    code: {**_ERROR_RESPONSE, "description": text}
    for code, text in (
        ("400", "Malformed request, body or input"),
        ("404", "Unknown model or version"),
        ("503", "Backend unavailable"),
        ("504", "Backend deadline exceeded"),
    )
}

# ---- Tensors as JSON Schema ------------------------------------------------------------


def leaf_schema(dtype: DType) -> JsonSchema | None:
    """The JSON Schema of one element of `dtype`, or None when JSON cannot carry it.

    Floats are numbers (DT_FLOAT within float32's range), integers are integers within
    the dtype's range, DT_BOOL is a boolean, DT_STRING is a string or `{"b64": "..."}`."""
    if dtype in FLOATS:
        schema: JsonSchema = {"type": "number", "format": "double"}
        if dtype == DType.DT_FLOAT:
            schema = {"type": "number", "format": "float"}
            schema.update(minimum=-_FLOAT32_MAX, maximum=_FLOAT32_MAX)
        return schema
    if dtype in RANGES:
        info = np.iinfo(NUMPY_OF[dtype])
        return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    if dtype == DType.DT_BOOL:
        return {"type": "boolean"}
    if dtype == DType.DT_STRING:
        return {"anyOf": [{"type": "string"}, _B64_OBJECT]}
    return None


def example_leaf(dtype: DType) -> object:
    """A valid JSON element of `dtype` (see `leaf_schema`)."""
    if dtype in FLOATS:
        return 1.0
    if dtype == DType.DT_BOOL:
        return True
    if dtype == DType.DT_STRING:
        return "text"
    return 1


def tensor_schema(spec: TensorSpec, dims: Sequence[int] | None) -> JsonSchema | None:
    """The JSON Schema of a nested list of `spec.dtype` with `dims` (None: any rank).

    A dimension of -1 is any size from 1 up; a fixed one is `minItems` = `maxItems`.
    None when the dtype has no JSON form."""
    leaf = leaf_schema(spec.dtype)
    if leaf is None:
        return None
    if dims is None:
        return {
            "description": "Rank unknown: a value or nested lists of equal length.",
            "anyOf": [leaf, {"type": "array", "items": leaf, "minItems": 1}],
        }
    schema = leaf
    for size in reversed(dims):
        bounds = {"minItems": 1} if size < 0 else {"minItems": size, "maxItems": size}
        schema = {"type": "array", "items": schema, **bounds}
    return schema


def example_tensor(spec: TensorSpec, dims: Sequence[int] | None) -> object:
    """A value that fits `tensor_schema(spec, dims)`: size 1 for each -1 dimension."""
    value = example_leaf(spec.dtype)
    if dims is None:
        return [value]
    for size in reversed(dims):
        value = [copy.deepcopy(value) for _ in range(1 if size < 0 else size)]
    return value


# ---- TF Serving's REST API (v1) --------------------------------------------------------


def model_tag(name: str) -> str:
    """The OpenAPI tag grouping one model's operations (shared by every protocol)."""
    return f"Model {name}"


def tf_serving_v1_paths(name: str, metadata: ModelMetadata) -> PathItems:
    """`/v1/models/<name>` paths: predict (and classify/regress where the model has them),
    with request schemas and examples from `metadata`, plus the status and metadata GETs."""
    base = f"/v1/models/{name}"
    tag = model_tag(name)
    paths: PathItems = {}
    predict = _predict_operation(name, metadata, tag)
    if predict is not None:
        paths[f"{base}:predict"] = {"post": predict}
    for verb, method in (("classify", CLASSIFY_METHOD), ("regress", REGRESS_METHOD)):
        operation = _examples_operation(name, metadata, tag, verb, method)
        if operation is not None:
            paths[f"{base}:{verb}"] = {"post": operation}
    paths[base] = {"get": _status_operation(name, tag)}
    paths[f"{base}/metadata"] = {"get": _metadata_operation(name, metadata, tag)}
    return paths


def _predict_operation(name: str, metadata: ModelMetadata, tag: str) -> dict[str, Any] | None:
    variants: list[JsonSchema] = []
    examples: dict[str, Any] = {}
    responses: list[JsonSchema] = []
    left_out: list[str] = []
    for signature_name, signature in _ordered(metadata.signatures):
        if signature.method_name != PREDICT_METHOD:
            continue
        forms = _predict_forms(signature)
        if forms is None:
            left_out.append(signature_name)
            continue
        for form, (body_schema, example) in forms.items():
            variants.append(_request_variant(signature_name, form, body_schema))
            if form == "instances" or signature_name == DEFAULT_SIGNATURE:
                examples[f"{signature_name} ({_FORM_NAMES[form]})"] = {
                    "summary": f"{signature_name}, {_FORM_NAMES[form]} format",
                    "value": _with_signature(signature_name, {form: example}),
                }
        responses += _predict_responses(signature)
    if not variants:
        return None
    description = (
        f"Runs a predict signature of **{name}** (version {metadata.version}). The schema "
        "lists each signature's inputs: `instances` holds one item per example (row "
        "format, answered with `predictions`), `inputs` holds whole tensors (columnar "
        "format, answered with `outputs`). Nested lists must be regular (rows of equal "
        'length). Without `signature_name`, "serving_default" runs.'
    )
    if left_out:
        description += f" Not shown (an input dtype JSON cannot carry): {', '.join(left_out)}."
    return {
        "tags": [tag],
        "summary": f"Predict with {name}",
        "description": description,
        "operationId": f"v1_predict_{name}",
        "requestBody": {
            "required": True,
            "content": {_JSON: {"schema": {"oneOf": variants}, "examples": examples}},
        },
        "responses": {
            "200": {
                "description": "The outputs, in the request's format",
                "content": {_JSON: {"schema": {"anyOf": _unique(responses)}}},
            },
            **_ERRORS,
        },
    }


_FORM_NAMES = {"instances": "row", "inputs": "columnar"}


def _ordered(signatures: Mapping[str, Signature]) -> list[tuple[str, Signature]]:
    """serving_default first, then the others by name."""
    return sorted(signatures.items(), key=lambda item: (item[0] != DEFAULT_SIGNATURE, item[0]))


def _predict_forms(signature: Signature) -> dict[str, tuple[JsonSchema, object]] | None:
    """{"instances": (schema, example), "inputs": (...)} for the formats the inputs allow;
    None when an input's dtype has no JSON form (or there are no inputs)."""
    inputs = sorted(signature.inputs.items())
    if not inputs or any(leaf_schema(spec.dtype) is None for _, spec in inputs):
        return None
    forms: dict[str, tuple[JsonSchema, object]] = {}
    rows = _row_form(inputs)
    if rows is not None:
        forms["instances"] = rows
    tensors = {alias: _checked(tensor_schema(spec, spec.shape)) for alias, spec in inputs}
    values = {alias: example_tensor(spec, spec.shape) for alias, spec in inputs}
    alternatives, example = _plain_or_named(tensors, values)
    forms["inputs"] = _any_of(alternatives), example
    return forms


def _row_form(inputs: list[tuple[str, TensorSpec]]) -> tuple[JsonSchema, object] | None:
    """`instances`: the inputs' first dimension is the batch; None when they have none."""
    batch_sizes = set()
    for _, spec in inputs:
        if spec.shape is not None:
            if not spec.shape:
                return None  # a scalar input has no batch dimension
            batch_sizes.add(spec.shape[0])
    fixed = batch_sizes - {-1}
    if len(fixed) > 1:
        return None
    batch = fixed.pop() if fixed else -1
    items = {alias: _checked(tensor_schema(spec, _rest(spec))) for alias, spec in inputs}
    values = {alias: example_tensor(spec, _rest(spec)) for alias, spec in inputs}
    alternatives, item_example = _plain_or_named(items, values)
    bounds = {"minItems": 1} if batch < 0 else {"minItems": batch, "maxItems": batch}
    # every item takes the same form: all plain or all named objects
    arrays = [{"type": "array", "items": item, **bounds} for item in alternatives]
    example = [copy.deepcopy(item_example) for _ in range(1 if batch < 0 else batch)]
    return _any_of(arrays), example


def _rest(spec: TensorSpec) -> tuple[int, ...] | None:
    return None if spec.shape is None else spec.shape[1:]


def _plain_or_named(
    schemas: dict[str, JsonSchema], examples: dict[str, object]
) -> tuple[list[JsonSchema], object]:
    """The forms a value may take, and an example of the first: one input is its value or
    an object naming it; several are an object naming each."""
    named: JsonSchema = {
        "type": "object",
        "properties": schemas,
        "required": sorted(schemas),
        "additionalProperties": False,
    }
    if len(schemas) > 1:
        return [named], examples
    ((_, plain),) = schemas.items()
    ((_, example),) = examples.items()
    return [plain, named], example


def _any_of(schemas: list[JsonSchema]) -> JsonSchema:
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


def _checked(schema: JsonSchema | None) -> JsonSchema:
    assert schema is not None  # the caller checked every dtype has a JSON form
    return schema


def _request_variant(signature_name: str, form: str, body_schema: JsonSchema) -> JsonSchema:
    """One signature in one format; `signature_name` is needed unless it is the default."""
    required = [form] if signature_name == DEFAULT_SIGNATURE else ["signature_name", form]
    return {
        "title": f"{signature_name}, {_FORM_NAMES[form]} format",
        "type": "object",
        "properties": {
            "signature_name": {"type": "string", "enum": [signature_name]},
            form: body_schema,
        },
        "required": required,
        "additionalProperties": False,
    }


def _with_signature(signature_name: str, body: dict[str, Any]) -> dict[str, Any]:
    if signature_name == DEFAULT_SIGNATURE:
        return body
    return {"signature_name": signature_name, **body}


def _predict_responses(signature: Signature) -> list[JsonSchema]:
    """`predictions` (row) and `outputs` (columnar) as the signature's outputs shape them."""
    outputs = sorted(signature.outputs.items())
    rows = {alias: _output_schema(spec, _rest(spec)) for alias, spec in outputs}
    whole = {alias: _output_schema(spec, spec.shape) for alias, spec in outputs}

    def named(schemas: dict[str, JsonSchema]) -> JsonSchema:
        if len(schemas) == 1:
            return next(iter(schemas.values()))
        return {"type": "object", "properties": schemas, "required": sorted(schemas)}

    return [
        {
            "type": "object",
            "properties": {"predictions": {"type": "array", "items": named(rows)}},
            "required": ["predictions"],
        },
        {"type": "object", "properties": {"outputs": named(whole)}, "required": ["outputs"]},
    ]


def _output_schema(spec: TensorSpec, dims: Sequence[int] | None) -> JsonSchema:
    """An output's JSON: as its input counterpart, but any size (an empty batch included),
    any number (TF Serving writes NaN and Infinity too) and integers without bounds."""
    if spec.dtype in FLOATS:
        schema: JsonSchema = {"type": "number"}
    elif spec.dtype in RANGES:
        schema = {"type": "integer"}
    else:
        schema = leaf_schema(spec.dtype) or {}
    if dims is None:
        return {}
    for size in reversed(dims):
        bounds = {} if size < 0 else {"minItems": size, "maxItems": size}
        schema = {"type": "array", "items": schema, **bounds}
    return schema


def _unique(schemas: list[JsonSchema]) -> list[JsonSchema]:
    seen: dict[str, JsonSchema] = {}
    for schema in schemas:
        seen.setdefault(json.dumps(schema, sort_keys=True), schema)
    return list(seen.values())


# ---- classify and regress --------------------------------------------------------------


def _examples_operation(
    name: str, metadata: ModelMetadata, tag: str, verb: str, method: str
) -> dict[str, Any] | None:
    """:classify or :regress, for a scikit-learn model of that kind (features from its
    metadata, with an example) or a TF model with signatures of that method."""
    sklearn = metadata.extra.get("sklearn")
    if isinstance(sklearn, Mapping):
        body = _sklearn_examples_body(metadata, sklearn, verb)
    else:
        body = _tf_examples_body(metadata, method)
    if body is None:
        return None
    schema, example, notes = body
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["examples"] = {"one example": {"summary": "One example", "value": example}}
    results: JsonSchema = (
        {"type": "array", "items": {"type": "array", "items": {"type": "array"}}}
        if verb == "classify"
        else {"type": "array", "items": {"type": "number"}}
    )
    return {
        "tags": [tag],
        "summary": f"{verb.capitalize()} tf.Examples with {name}",
        "description": f"{verb.capitalize()} with **{name}** (version {metadata.version}). "
        + notes,
        "operationId": f"v1_{verb}_{name}",
        "requestBody": {"required": True, "content": {_JSON: media}},
        "responses": {
            "200": {
                "description": "One result per example",
                "content": {
                    _JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {"results": results},
                            "required": ["results"],
                        }
                    }
                },
            },
            **_ERRORS,
        },
    }


def _sklearn_examples_body(
    metadata: ModelMetadata, sklearn: Mapping[str, Any], verb: str
) -> tuple[JsonSchema, object, str] | None:
    """A classifier classifies, a single-output regressor regresses; rows come from named
    features (the model's feature names) or one feature "inputs" holding every value."""
    default = metadata.signatures.get(DEFAULT_SIGNATURE)
    if default is None or len(default.inputs) != 1:
        return None
    is_classifier = "classes" in sklearn
    if verb == "classify" and not is_classifier:
        return None
    if verb == "regress" and (is_classifier or not _single_float_output(default)):
        return None
    ((_, spec),) = default.inputs.items()
    names = sklearn.get("feature_names")
    if spec.dtype == DType.DT_STRING:
        feature: JsonSchema = {"type": "object", "properties": {"inputs": {"type": "string"}}}
        example: dict[str, object] = {"inputs": "text"}
        notes = 'Each example holds its text in the feature "inputs".'
    elif isinstance(names, list) and names:
        feature = {"type": "object", "properties": {str(n): _FEATURE_NUMBER for n in names}}
        example = {str(n): 1.0 for n in names}
        notes = "Each example names every feature of the model, one number each (float32)."
    else:
        width = spec.shape[1] if spec.shape is not None and len(spec.shape) == 2 else -1
        values: JsonSchema = {"type": "array", "items": _FEATURE_NUMBER, "minItems": 1}
        if width >= 0:
            values.update(minItems=width, maxItems=width)
        feature = {"type": "object", "properties": {"inputs": values}}
        example = {"inputs": [1.0] * max(width, 1)}
        notes = 'Each example holds all feature values, in order, in the feature "inputs".'
    feature.update(required=sorted(feature["properties"]), additionalProperties=False)
    if verb == "classify":
        classes = ", ".join(map(str, sklearn.get("classes", [])))
        notes += f" Answered with a score per class ({classes})."
    schema = {
        "type": "object",
        "properties": {
            "signature_name": {"type": "string", "enum": [DEFAULT_SIGNATURE]},
            "examples": {"type": "array", "items": feature, "minItems": 1},
        },
        "required": ["examples"],
        "additionalProperties": False,
    }
    return schema, {"examples": [example]}, notes


def _single_float_output(signature: Signature) -> bool:
    outputs = list(signature.outputs.values())
    if len(outputs) != 1 or outputs[0].dtype not in FLOATS:
        return False
    shape = outputs[0].shape
    return shape is not None and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1))


def _tf_examples_body(
    metadata: ModelMetadata, method: str
) -> tuple[JsonSchema, object, str] | None:
    """The signatures of `method`; features are free-form (see the note)."""
    names = [n for n, s in _ordered(metadata.signatures) if s.method_name == method]
    if not names:
        return None
    value: JsonSchema = {
        "anyOf": [
            _FEATURE_NUMBER,
            {"type": "string"},
            _B64_OBJECT,
            {"type": "array", "items": {"anyOf": [_FEATURE_NUMBER, {"type": "string"}]}},
        ]
    }
    example_schema: JsonSchema = {"type": "object", "additionalProperties": value}
    schema = {
        "type": "object",
        "properties": {
            "signature_name": {"type": "string", "enum": names},
            "context": example_schema,
            "examples": {"type": "array", "items": example_schema, "minItems": 1},
        },
        "required": ["examples"] if DEFAULT_SIGNATURE in names else ["signature_name", "examples"],
    }
    notes = (
        f"Signatures: {', '.join(names)}. Each example maps feature names to a value or a "
        "flat list of values; which features the model parses is set inside its graph, "
        "which TF Serving's metadata does not show, so no example request is given here."
    )
    return schema, None, notes


# ---- status and metadata ---------------------------------------------------------------


def _status_operation(name: str, tag: str) -> dict[str, Any]:
    status = {
        "type": "object",
        "properties": {
            "model_version_status": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "version": {"type": "string"},
                        "state": {"type": "string"},
                        "status": {"type": "object"},
                    },
                },
            }
        },
        "required": ["model_version_status"],
    }
    return {
        "tags": [tag],
        "summary": f"Version status of {name}",
        "operationId": f"v1_status_{name}",
        "responses": {
            "200": {"description": "Every tracked version", "content": {_JSON: {"schema": status}}},
            **_ERRORS,
        },
    }


def _metadata_operation(name: str, metadata: ModelMetadata, tag: str) -> dict[str, Any]:
    signatures = ", ".join(name for name, _ in _ordered(metadata.signatures)) or "none"
    schema = {
        "type": "object",
        "properties": {"model_spec": {"type": "object"}, "metadata": {"type": "object"}},
        "required": ["model_spec", "metadata"],
    }
    return {
        "tags": [tag],
        "summary": f"Metadata of {name} (signature defs)",
        "description": f"Version {metadata.version} has signatures: {signatures}.",
        "operationId": f"v1_metadata_{name}",
        "responses": {
            "200": {"description": "The signature defs", "content": {_JSON: {"schema": schema}}},
            **_ERRORS,
        },
    }


# ---- The whole spec --------------------------------------------------------------------

_BUILDERS: list[ModelPathsBuilder] = [tf_serving_v1_paths]


def register_model_paths(builder: ModelPathsBuilder) -> None:
    """Add a protocol's per-model paths to `/openapi.json`.

    `builder(name, metadata)` is called for every available model on each request of the
    spec and returns `{path: OpenAPI path item}`; tag its operations with `model_tag(name)`
    so they sit with the model's other paths. A builder that raises leaves only its own
    paths out. Registering the same builder twice has no effect."""
    if builder not in _BUILDERS:
        _BUILDERS.append(builder)


async def model_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's static spec plus every available model's own paths, from current metadata."""
    spec = copy.deepcopy(app.openapi())
    dataplane: DataPlane | None = getattr(app.state, "dataplane", None)
    if dataplane is None:  # the app is not started: only the generic paths
        return spec
    names = [entry.name for entry in dataplane.registry.entries]
    unready = dataplane.unready_models()  # known without a backend call: not asked
    ready = [name for name in names if name not in unready]
    metadatas = await asyncio.gather(*(_metadata_or_none(dataplane, name) for name in ready))
    found = dict(zip(ready, metadatas, strict=True))
    model_paths: PathItems = {}
    tags: list[dict[str, str]] = []
    documented: list[str] = []
    skipped: list[str] = []
    for name in names:
        metadata = found.get(name)
        if metadata is None:
            skipped.append(name)
            continue
        for builder in _BUILDERS:
            try:
                model_paths.update(builder(name, metadata))
            except Exception:  # one protocol's bug must not take the docs down
                logger.warning("per-model OpenAPI paths of %s failed", name, exc_info=True)
        documented.append(name)
        tags.append({"name": model_tag(name), "description": _model_description(metadata)})
    spec["paths"] = {**model_paths, **spec.get("paths", {})}
    spec["tags"] = [*tags, *spec.get("tags", [])]
    info = spec.setdefault("info", {})
    info["description"] = info.get("description", "") + _summary(documented, skipped)
    return spec


async def _metadata_or_none(dataplane: DataPlane, name: str) -> ModelMetadata | None:
    """The model's metadata, or None when its backend fails or is slow to give it."""
    try:
        return await asyncio.wait_for(dataplane.metadata(ModelSpec(name)), METADATA_TIMEOUT_SECONDS)
    except (ServingError, TimeoutError):
        return None
    except Exception:  # a backend bug leaves this model out, not the whole spec
        logger.warning("metadata of %s for the OpenAPI spec failed", name, exc_info=True)
        return None


def _model_description(metadata: ModelMetadata) -> str:
    signatures = ", ".join(name for name, _ in _ordered(metadata.signatures))
    return f"Version {metadata.version}; signatures: {signatures or 'none'}."


def _summary(documented: list[str], skipped: list[str]) -> str:
    text = (
        "\n\n**Per-model paths.** Each model that can answer now has its own paths (tag "
        '"Model <name>"), with request schemas and examples from its current signatures; '
        "they follow new versions on every load of this page. The generic "
        "`/v1/models/{model_name}` paths (and their versions and labels) accept every model."
    )
    if not documented:
        text += " No model is documented this way right now."
    if skipped:
        text += (
            f"\n\nNot available now, so not shown per model: {', '.join(skipped)} (no version "
            "loaded, or the backend did not answer; `GET /v1/models/<name>` tells why). "
            "The generic paths apply to them."
        )
    return text


# ---- Routes ----------------------------------------------------------------------------


def docs_assets_directory() -> Path:
    """The folder of Swagger UI's and ReDoc's files (`swagger/`, `redoc/`, `fastapi/`), as
    the `fastapi-standalone-docs` package ships it."""
    return Path(str(importlib.resources.files("fastapi_standalone_docs") / "static"))


def install(
    app: FastAPI,
    *,
    openapi_url: str = "/openapi.json",
    docs_url: str = "/docs",
    redoc_url: str = "/redoc",
) -> None:
    """Serve the per-model spec at `openapi_url`, and Swagger UI and ReDoc from local assets.

    Create `app` with `openapi_url=None, docs_url=None, redoc_url=None` so FastAPI's own
    routes (CDN assets, static spec) do not answer first."""

    async def openapi_json(request: Request) -> JSONResponse:
        return JSONResponse(await model_openapi(request.app))

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/fastapi/favicon.png",
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/fastapi/favicon.png",
            with_google_fonts=False,
        )

    async def redoc_logo() -> FileResponse:
        return FileResponse(assets / "redoc" / "logo-mini.svg")

    assets = docs_assets_directory()
    app.add_api_route(openapi_url, openapi_json, methods=["GET"], include_in_schema=False)
    app.add_api_route(docs_url, swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route(redoc_url, redoc, methods=["GET"], include_in_schema=False)
    # this ReDoc build asks for its logo at <page>/logo-mini.svg
    app.add_api_route(f"{redoc_url}/logo-mini.svg", redoc_logo, include_in_schema=False)
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")
