"""Fuzzing the gateway over HTTP: schemathesis on its own OpenAPI, hypothesis on raw requests.

The app runs with its real backends (the `client` fixture: the TF test models on a
separate TF-Serving-compatible process, scikit-learn iris/diabetes in-process). Every
generated request must get an answer that is not a 5xx (no backend is down here), and
every error must be TF Serving's `{"error": "<message>"}` as `application/json`, with no
stack trace, file path or backend address in it. Runs are derandomized (reproducible)
and bounded by `max_examples`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from clients.embedded import EmbeddedTfServing
from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import LEAK_MARKERS, TF_TEST_MODELS

pytestmark = pytest.mark.asyncio(loop_scope="session")

MODEL_NAMES = [*TF_TEST_MODELS, "iris", "diabetes"]
VERSIONS = [1, 123, 124, 999]
LABELS = ["stable", "canary", "nope"]
VERBS = ["predict", "classify", "regress"]

# The gateway's own OpenAPI document (the same for every Settings: routes are static).
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
Operation = APIOperation[Any, Any, Any, Any]


def _operations() -> list[Operation]:
    """Every documented operation but the Open Inference Protocol's, which answer in
    their own shapes (tests/test_fuzz_v2.py fuzzes them)."""
    operations = []
    for result in SCHEMA.get_all_operations():
        assert isinstance(result, Ok), result  # the gateway's schema must load whole
        if not result.ok().path.startswith("/v2"):
            operations.append(result.ok())
    return operations


OPERATIONS = _operations()
# Negative data needs something that can be invalid: a body or an integer version
# (any string is a valid model name or label, so GETs by name alone have none).
NEGATIVE_OPERATIONS = [
    operation
    for operation in OPERATIONS
    if operation.method.upper() == "POST" or "{version}" in operation.path
]
CASES = [
    *(pytest.param(op, GenerationMode.POSITIVE, id=f"positive {op.label}") for op in OPERATIONS),
    *(
        pytest.param(op, GenerationMode.NEGATIVE, id=f"negative {op.label}")
        for op in NEGATIVE_OPERATIONS
    ),
]

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


# GET /backends exists to name the replicas' addresses (it needs a key when keys are set).
ADDRESS_MARKERS = ("127.0.0.1:", "localhost:", "ipv4:", "ipv6:")


def assert_tf_serving_error_shape(
    response: httpx.Response,
    sent: str,
    *,
    model_paths: tuple[str, ...],
    extra_markers: tuple[str, ...] = (),
    readiness: bool = False,
    names_addresses: bool = False,
) -> None:
    """No 5xx; an error is `{"error": str}` as JSON; nothing internal in any body.

    A marker that the request itself carried (e.g. a path echoed in "Malformed request")
    is not a leak, so markers found in `sent` are skipped. `/readyz` is 503 (with the
    reasons under "models" beside "error") because `bad_half_plus_two` never loads; its
    reasons must not leak either (the endpoint is open even with API keys).
    `names_addresses`: the body may name backend addresses (`GET /backends`).
    """
    method = response.request.method
    event(f"HTTP {response.status_code}")  # shown by --hypothesis-show-statistics
    text = response.content.decode("utf-8", "replace")
    markers = (*LEAK_MARKERS, *model_paths)
    if not readiness:
        # Model status repeats TF Serving's load error, which names the model's own path as
        # TF Serving's does (behind auth when keys are set): that path is no leak (wherever
        # it is, /tmp/ included), any other is. Open /readyz must name none.
        for path in model_paths:
            text = text.replace(path, "<model path>")
    if names_addresses:
        markers, extra_markers = tuple(m for m in markers if m not in ADDRESS_MARKERS), ()
    for marker in (*markers, *extra_markers):
        if marker not in sent:
            assert marker not in text, (marker, response.request.url, text)
    if readiness and response.status_code == 503:
        assert set(response.json()) == {"error", "models"}, response.text
        return
    assert response.status_code < 500, (method, response.request.url, response.text)
    if method in ("HEAD", "OPTIONS") or response.status_code < 400:
        return
    assert response.headers["content-type"] == "application/json", response.headers
    body = json.loads(response.content)
    assert isinstance(body, dict), body
    assert list(body) == ["error"], body
    assert isinstance(body["error"], str), body
    assert body["error"], body


@pytest.fixture(scope="session")
def model_paths(gateway_settings: Settings) -> tuple[str, ...]:
    """The configured models' base paths, longest first."""
    return tuple(sorted((m.base_path for m in gateway_settings.models), key=len, reverse=True))


def backend_markers(compat_backend: EmbeddedTfServing) -> tuple[str, ...]:
    """The real backend's address, which must never appear in a response."""
    target = compat_backend.target
    return (target,) if target else ()


# ---- schemathesis: every documented operation -------------------------------------------


def _real_path_parameters() -> st.SearchStrategy[dict[str, Any] | None]:
    """Often a configured model (and a real version or label); else schemathesis's own."""
    real = st.fixed_dictionaries(
        {
            "model_name": st.sampled_from(MODEL_NAMES),
            "version": st.sampled_from(VERSIONS),
            "label": st.sampled_from(LABELS),
        }
    )
    return st.one_of(real, real, real, st.none())


def _send_kwargs(case: Case[Operation]) -> dict[str, Any]:
    """The case as httpx keyword arguments (bodies serialized as JSON, NaN allowed)."""
    kwargs = case.as_transport_kwargs(base_url="http://gateway")
    sent: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": kwargs.get("headers") or {},
        "params": kwargs.get("params") or {},
    }
    if "json" in kwargs:
        sent["content"] = json.dumps(kwargs["json"]).encode()
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        sent["content"] = data if isinstance(data, bytes) else str(data).encode()
    return sent


@pytest.mark.parametrize(("operation", "mode"), CASES)
@settings(FUZZ, max_examples=10)
@given(data=st.data())
async def test_openapi_operations_never_5xx_and_errors_are_tf_serving_json(
    client: httpx.AsyncClient,
    compat_backend: EmbeddedTfServing,
    model_paths: tuple[str, ...],
    operation: Operation,
    mode: GenerationMode,
    data: st.DataObject,
) -> None:
    case = data.draw(operation.as_strategy(generation_mode=mode), label="case")
    real = data.draw(_real_path_parameters(), label="real path parameters")
    if real is not None:
        for parameter in operation.path_parameters:
            case.path_parameters[parameter.name] = real[parameter.name]
    sent = _send_kwargs(case)
    response = await client.request(**sent)
    readiness = operation.path == "/readyz"  # 503 documented: a test model never loads
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    case.validate_response(response, checks=checks if readiness else [not_a_server_error, *checks])
    assert_tf_serving_error_shape(
        response,
        sent["url"] + repr(sent.get("content")),
        model_paths=model_paths,
        extra_markers=backend_markers(compat_backend),
        readiness=readiness,
        names_addresses=operation.path == "/backends",
    )


# ---- hypothesis: raw requests the schema does not describe ------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["x", "b64", "inputs", "instances", "examples", "y"])
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)
BODY_KEYS = st.sampled_from(
    ["instances", "inputs", "examples", "context", "signature_name", "other"]
)
JSON_BODIES = JSON_VALUES | st.dictionaries(BODY_KEYS, JSON_VALUES, max_size=3)
SIGNATURES = st.sampled_from(
    ["", "serving_default", "predict_proba", "classify_x_to_y", "regress_x_to_y", "nope"]
)


def _addressing() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(""),
        st.sampled_from(VERSIONS).map(lambda version: f"/versions/{version}"),
        st.sampled_from(LABELS).map(lambda label: f"/labels/{label}"),
    )


def _model_url() -> st.SearchStrategy[str]:
    return st.builds(
        lambda name, addressing, verb: f"/v1/models/{name}{addressing}:{verb}",
        st.sampled_from(MODEL_NAMES),
        _addressing(),
        st.sampled_from(VERBS),
    )


@settings(FUZZ, max_examples=100)
@given(url=_model_url(), body=st.binary(max_size=300))
async def test_arbitrary_bytes_bodies(
    client: httpx.AsyncClient, model_paths: tuple[str, ...], url: str, body: bytes
) -> None:
    response = await client.post(url, content=body)
    assert_tf_serving_error_shape(response, url + repr(body), model_paths=model_paths)


@settings(FUZZ, max_examples=80)
@given(url=_model_url(), document=JSON_BODIES, signature=SIGNATURES | st.none())
async def test_arbitrary_json_bodies(
    client: httpx.AsyncClient,
    model_paths: tuple[str, ...],
    url: str,
    document: object,
    signature: str | None,
) -> None:
    if signature is not None and isinstance(document, dict):
        document["signature_name"] = signature
    body = json.dumps(document).encode()  # NaN/Infinity as bare tokens, as TF Serving takes
    response = await client.post(url, content=body)
    assert_tf_serving_error_shape(response, url + body.decode(), model_paths=model_paths)


PATH_PIECES = st.sampled_from(
    [
        *MODEL_NAMES,
        "versions",
        "labels",
        "metadata",
        "..",
        ".",
        "%2e%2e",
        "%2F",
        "%3A",
        "%00",
        "%zz",
        "%",
        "%C3%28",
        ":predict",
        ":classify",
        ":Predict",
        ":explain",
        "123",
        "99999999999999999999999",
        "-1",
        "stable",
        "?x=1",
        "etc",
        "passwd",
    ]
)
RANDOM_PATH = st.lists(
    PATH_PIECES | st.text(min_size=1, max_size=12).map(lambda text: quote(text, safe="")),
    min_size=0,
    max_size=6,
).map(lambda pieces: "/v1/models/" + "/".join(pieces))


@settings(FUZZ, max_examples=80)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=RANDOM_PATH,
    body=st.sampled_from([b"", b'{"instances": [1.0]}', b'{"inputs": [[1, 2, 3, 4]]}']),
)
async def test_random_paths_under_v1_models(
    client: httpx.AsyncClient, model_paths: tuple[str, ...], method: str, path: str, body: bytes
) -> None:
    response = await client.request(method, path, content=body)
    assert_tf_serving_error_shape(response, path + repr(body), model_paths=model_paths)
