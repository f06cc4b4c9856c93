"""Fuzzing the Open Inference Protocol (v2) routes: schemathesis on the gateway's own
/openapi.json (its /v2 operations), hypothesis on binary-data bodies the schema cannot
describe.

As in tests/test_fuzz_openapi.py (whose schema and helpers this reuses), the app runs with
its real backends (the `client` fixture: the TF test models on the session's separate
TF-Serving-compatible process, scikit-learn iris/diabetes in-process). Every answer must
be below 500 (no backend is down here); every non-2xx answer is JSON with an "error"
string (not-ready answers add `"ready": false`), naming nothing internal. Well-formed
binary requests must be answered 200 with y = x/2 + 2, bit for bit. Runs are derandomized
and bounded by `max_examples` (about 12 s in all, backend start included).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from clients.dtypes import V2_DATATYPES
from clients.embedded import EmbeddedTfServing
from gateway.settings import Settings
from tests.conftest import LEAK_MARKERS
from tests.test_fuzz_openapi import (
    FUZZ,
    LABELS,
    MODEL_NAMES,
    SCHEMA,
    VERSIONS,
    Operation,
    _send_kwargs,
    backend_markers,
)
from tests.v2_gateway import iris_estimator

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _v2_operations() -> list[Operation]:
    """The documented /v2 operations (the TF Serving surface is test_fuzz_openapi's)."""
    operations = []
    for result in SCHEMA.get_all_operations():
        assert isinstance(result, Ok), result  # the gateway's schema must load whole
        if result.ok().path.startswith("/v2"):
            operations.append(result.ok())
    return operations


V2_OPERATIONS = _v2_operations()
# A v2 version is any string (a number or a label), so only bodies can be invalid.
V2_NEGATIVE = [operation for operation in V2_OPERATIONS if operation.method.upper() == "POST"]
V2_CASES = [
    *(pytest.param(op, GenerationMode.POSITIVE, id=f"positive {op.label}") for op in V2_OPERATIONS),
    *(pytest.param(op, GenerationMode.NEGATIVE, id=f"negative {op.label}") for op in V2_NEGATIVE),
]
V2_VERSIONS = [*(str(version) for version in VERSIONS), *LABELS]
HEADER = "Inference-Header-Content-Length"


async def test_the_schema_has_every_v2_route() -> None:
    """The fuzzing below covers all nine documented v2 operations."""
    assert len(V2_OPERATIONS) == 9, [op.label for op in V2_OPERATIONS]
    assert len(V2_NEGATIVE) == 2


@pytest.fixture(scope="session")
def v2_model_paths(gateway_settings: Settings) -> tuple[str, ...]:
    """The configured models' base paths (a model's own load error may name its path)."""
    return tuple(sorted((m.base_path for m in gateway_settings.models), key=len, reverse=True))


def assert_v2_answer(
    response: httpx.Response, sent: str, model_paths: tuple[str, ...], extra: tuple[str, ...]
) -> None:
    """Below 500; a non-2xx is JSON with a non-empty "error" string; nothing internal.

    A marker that the request itself carried is no leak, so markers in `sent` are skipped.
    """
    event(f"HTTP {response.status_code}")
    text = response.content.decode("utf-8", "replace")
    for path in model_paths:
        text = text.replace(path, "<model path>")
    for marker in (*LEAK_MARKERS, *extra):
        if marker not in sent:
            assert marker not in text, (marker, response.request.url, text)
    assert response.status_code < 500, (response.request.url, response.text)
    if response.is_success or response.request.method == "HEAD":
        return
    assert response.headers["content-type"] == "application/json", response.headers
    body = json.loads(response.content)
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert set(body) <= {"error", "ready", "name"}, body
    if set(body) != {"error"}:  # a not-ready answer (a 4xx means "not ready")
        assert body["ready"] is False and response.status_code == 400, body


def _v2_path_parameters() -> st.SearchStrategy[dict[str, Any] | None]:
    """Often a configured model (and a real version or label); else schemathesis's own."""
    real = st.fixed_dictionaries(
        {
            "model_name": st.sampled_from([*MODEL_NAMES, "no_such_model"]),
            "version": st.sampled_from(V2_VERSIONS),
        }
    )
    return st.one_of(real, real, real, st.none())


@pytest.mark.parametrize(("operation", "mode"), V2_CASES)
@settings(FUZZ, max_examples=15)
@given(data=st.data())
async def test_v2_operations_never_5xx_and_errors_are_json(
    client: httpx.AsyncClient,
    compat_backend: EmbeddedTfServing,
    v2_model_paths: tuple[str, ...],
    operation: Operation,
    mode: GenerationMode,
    data: st.DataObject,
) -> None:
    case = data.draw(operation.as_strategy(generation_mode=mode), label="case")
    real = data.draw(_v2_path_parameters(), label="real path parameters")
    if real is not None:
        for parameter in operation.path_parameters:
            case.path_parameters[parameter.name] = real[parameter.name]
    sent = _send_kwargs(case)
    response = await client.request(**sent)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    case.validate_response(response, checks=checks)
    assert_v2_answer(
        response,
        sent["url"] + repr(sent.get("content")),
        v2_model_paths,
        backend_markers(compat_backend),
    )


# ---- hypothesis: binary tensor data (JSON header + raw bytes) -------------------------

BINARY_SIZES = st.integers(-2, 48) | st.sampled_from([2**31, 2**64, 1.5, "4", None, True])
TENSORS = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["x", "inputs", "y", ""]),
        "datatype": st.sampled_from([*V2_DATATYPES, "FLOAT", "COMPLEX64"]),
        "shape": st.lists(st.integers(-1, 6), max_size=3),
    },
    optional={
        "parameters": st.fixed_dictionaries({"binary_data_size": BINARY_SIZES}),
        "data": st.lists(st.integers(-3, 3) | st.floats() | st.text(max_size=3), max_size=6),
    },
)
DOCUMENTS = st.fixed_dictionaries(
    {"inputs": st.lists(TENSORS, max_size=3)},
    optional={
        "outputs": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["y", "predict", "predict_proba", "scores", "z"])},
                optional={"parameters": st.fixed_dictionaries({"binary_data": st.booleans()})},
            ),
            max_size=2,
        ),
        "parameters": st.fixed_dictionaries(
            {},
            optional={
                "signature_name": st.sampled_from(
                    ["serving_default", "classify_x_to_y", "predict_proba", "nope"]
                ),
                "binary_data_output": st.booleans(),
            },
        ),
        "id": st.text(max_size=4),
    },
)


def _json_text(document: dict[str, Any]) -> bytes:
    """orjson's text, or the standard library's for what orjson refuses (a
    `binary_data_size` of 2**64: integers beyond 64 bits)."""
    try:
        return orjson.dumps(document)
    except TypeError:
        return json.dumps(document).encode()


def _infer_url() -> st.SearchStrategy[str]:
    addressing = st.just("") | st.sampled_from(V2_VERSIONS).map(lambda v: f"/versions/{v}")
    return st.builds(
        lambda name, version: f"/v2/models/{name}{version}/infer",
        st.sampled_from(MODEL_NAMES),
        addressing,
    )


@settings(FUZZ, max_examples=150)
@given(
    url=_infer_url(),
    document=DOCUMENTS,
    binary=st.binary(max_size=64),
    header=st.none() | st.integers(-3, 400).map(str) | st.text(max_size=4),
    correct_header=st.booleans(),
)
async def test_binary_bodies_never_5xx(
    client: httpx.AsyncClient,
    v2_model_paths: tuple[str, ...],
    url: str,
    document: dict[str, Any],
    binary: bytes,
    header: str | None,
    correct_header: bool,
) -> None:
    """Any JSON header, any bytes after it, any Inference-Header-Content-Length."""
    json_part = _json_text(document)
    length = str(len(json_part)) if correct_header else header
    headers = {} if length is None else {HEADER: length}
    try:
        response = await client.post(url, content=json_part + binary, headers=headers)
    except UnicodeEncodeError:  # a header value httpx cannot send: nothing reached the gateway
        return
    assert_v2_answer(response, url + repr(document) + repr(binary), v2_model_paths, ())


@settings(FUZZ, max_examples=60)
@given(
    x=st.lists(st.floats(width=32), max_size=6).map(lambda xs: np.array(xs, dtype="<f4")),
    binary_output=st.booleans(),
)
async def test_well_formed_binary_half_plus_two_is_exact(
    client: httpx.AsyncClient, x: np.ndarray, binary_output: bool
) -> None:
    """Any float32 values as binary data (NaN and infinities too) give y = x/2 + 2 exactly,
    as binary data or as JSON (where NaN and infinities are null)."""
    document = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [len(x), 1],
                "parameters": {"binary_data_size": x.nbytes},
            }
        ],
        "outputs": [{"name": "y", "parameters": {"binary_data": binary_output}}],
    }
    json_part = orjson.dumps(document)
    response = await client.post(
        "/v2/models/half_plus_two/infer",
        content=json_part + x.tobytes(),
        headers={HEADER: str(len(json_part))},
    )
    assert response.status_code == 200, response.text
    expected = (x * np.float32(0.5) + np.float32(2)).reshape(-1, 1)
    if binary_output:
        header_length = int(response.headers[HEADER])
        (output,) = orjson.loads(response.content[:header_length])["outputs"]
        got = np.frombuffer(response.content[header_length:], dtype="<f4").reshape(output["shape"])
        assert output["parameters"] == {"binary_data_size": expected.nbytes}, output
        assert np.array_equal(got, expected, equal_nan=True), (got, expected)
        return
    assert HEADER.lower() not in response.headers
    (output,) = response.json()["outputs"]
    finite = np.isfinite(expected).reshape(-1)
    values = output["data"]
    assert [value is None for value in values] == list(~finite), values
    got = np.array([v for v in values if v is not None], dtype=np.float32)
    assert np.array_equal(got, expected.reshape(-1)[finite]), (got, expected)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@settings(FUZZ, max_examples=40)
@given(
    rows=st.lists(st.lists(st.floats(), min_size=4, max_size=4), min_size=1, max_size=4).map(
        lambda rows: np.array(rows, dtype="<f8")
    )
)
async def test_iris_binary_rows_match_scikit_learn(
    client: httpx.AsyncClient, sklearn_models_dir: Path, rows: np.ndarray
) -> None:
    """Any float64 rows as binary data: predict_proba bit for bit as scikit-learn computes
    it from the same model file, or a 400 where scikit-learn refuses the values (NaN,
    infinities) saying so."""
    document = {
        "inputs": [
            {
                "name": "input-0",
                "datatype": "FP64",
                "shape": list(rows.shape),
                "parameters": {"binary_data_size": rows.nbytes},
            }
        ],
        "outputs": [{"name": "predict_proba", "parameters": {"binary_data": True}}],
    }
    json_part = orjson.dumps(document)
    response = await client.post(
        "/v2/models/iris/infer",
        content=json_part + rows.tobytes(),
        headers={HEADER: str(len(json_part))},
    )
    estimator = iris_estimator(sklearn_models_dir)
    try:
        with np.errstate(all="ignore"):  # huge finite rows overflow, in the gateway too
            expected = estimator.predict_proba(rows)
    except ValueError as error:
        assert response.status_code == 400, response.text
        event("refused by scikit-learn")
        assert str(error).split("\n")[0] in response.json()["error"], (error, response.text)
        return
    assert response.status_code == 200, response.text
    header_length = int(response.headers[HEADER])
    (output,) = orjson.loads(response.content[:header_length])["outputs"]
    got = np.frombuffer(response.content[header_length:], dtype="<f8").reshape(output["shape"])
    assert got.tobytes() == expected.astype("<f8").tobytes(), (got, expected)
