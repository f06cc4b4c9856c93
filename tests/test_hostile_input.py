"""Hostile and malformed input, table-driven, for a TF model (half_plus_two) and a
scikit-learn model (iris), over HTTP against the real app and backends.

Each row: the request, TF Serving's status code and a substring of the message that
names the problem (TF Serving's own wording, TFSERVING-REST-SPEC.md, where it has one).
Every answer must also be JSON without a stack trace, a file path or a backend address,
and the gateway must serve a normal request right after.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from clients.embedded import EmbeddedTfServing
from gateway.settings import Settings
from tests.conftest import LEAK_MARKERS, gateway_client

pytestmark = pytest.mark.asyncio(loop_scope="session")

TF = "/v1/models/half_plus_two"
SK = "/v1/models/iris"
ROW = [5.1, 3.5, 1.4, 0.2]
FEATURES = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
HUGE_INTEGER = "1" + "0" * 5000  # past Python's 4300-digit int() limit
HUGE_EXPONENT = "1e" + "1" * 5000


@dataclass(frozen=True)
class Hostile:
    """One hostile request and what TF Serving answers to it."""

    attack: str
    method: str
    path: str
    body: bytes
    status: int
    message: str  # a substring of the error (or of the body, for a 200)

    @property
    def id(self) -> str:
        return self.attack


def post(attack: str, path: str, body: object, status: int, message: str) -> Hostile:
    """A POST whose body is `body` as JSON text (NaN/Infinity as bare tokens), or raw bytes."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Hostile(attack, "POST", path, raw, status, message)


def get(attack: str, path: str, status: int, message: str) -> Hostile:
    return Hostile(attack, "GET", path, b"", status, message)


def classify_tf(example: object) -> dict[str, object]:
    return {"signature_name": "classify_x_to_y", "examples": [example]}


CASES: list[Hostile] = [
    # ---- invalid JSON ----------------------------------------------------------------
    post("tf-invalid-json", f"{TF}:predict", b'{"instances": [1.0,', 400, "JSON Parse error"),
    post("sk-invalid-json", f"{SK}:predict", b'{"instances": [[1.0,', 400, "JSON Parse error"),
    post("tf-empty-body", f"{TF}:predict", b"", 400, "JSON Parse error: The document is empty"),
    post("sk-empty-body", f"{SK}:classify", b"", 400, "JSON Parse error: The document is empty"),
    post("tf-root-not-object", f"{TF}:predict", b"[1.0]", 400, "Is not object"),
    post("sk-root-not-object", f"{SK}:predict", b'"instances"', 400, "Is not object"),
    post("tf-lowercase-nan", f"{TF}:predict", b'{"instances": [nan]}', 400, "Invalid value"),
    post("sk-binary-garbage", f"{SK}:predict", bytes(range(256)), 400, "JSON Parse error"),
    post(
        "tf-huge-integer-token",
        f"{TF}:predict",
        f'{{"instances": [{HUGE_INTEGER}]}}'.encode(),
        400,
        "Number too big to be stored in double",
    ),
    post(
        "sk-huge-integer-token",
        f"{SK}:predict",
        f'{{"instances": [[{HUGE_INTEGER}, 1, 2, 3]]}}'.encode(),
        400,
        "Number too big to be stored in double",
    ),
    post(
        "tf-huge-integer-feature",
        f"{TF}:classify",
        f'{{"signature_name": "classify_x_to_y", "examples": [{{"x": -{HUGE_INTEGER}}}]}}'.encode(),
        400,
        "Number too big to be stored in double",
    ),
    post(
        "sk-huge-exponent",
        f"{SK}:classify",
        f'{{"examples": [{{"inputs": [{HUGE_EXPONENT}, 1, 2, 3]}}]}}'.encode(),
        400,
        "Number too big to be stored in double",
    ),
    post(
        "tf-nesting-200000-deep",
        f"{TF}:predict",
        b"[" * 200_000,
        400,
        "max_json_depth",
    ),
    post(
        "sk-nesting-under-unused-key",
        f"{SK}:predict",
        b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b', "instances": [[1, 2, 3, 4]]}',
        400,
        "max_json_depth",
    ),
    # ---- wrong dtype -------------------------------------------------------------------
    post(
        "tf-string-into-float",
        f"{TF}:predict",
        {"instances": ["a"]},
        400,
        'JSON Value: "a" Type: String is not of expected type: float',
    ),
    post(
        "sk-string-into-double",
        f"{SK}:predict",
        {"instances": [["a", 1.0, 2.0, 3.0]]},
        400,
        'JSON Value: "a" Type: String is not of expected type: double',
    ),
    post(
        "tf-bool-into-float",
        f"{TF}:predict",
        {"inputs": [True]},
        400,
        "Type: True is not of expected type: float",
    ),
    post(
        "sk-null-into-double",
        f"{SK}:predict",
        {"inputs": [[1.0, None, 2.0, 3.0]]},
        400,
        "Type: Null is not of expected type: double",
    ),
    post(
        "tf-b64-into-float",
        f"{TF}:predict",
        {"instances": [{"b64": "AAAA"}]},
        400,
        "Type: Object is not of expected type: float",
    ),
    post(
        "sk-string-feature",
        f"{SK}:classify",
        {"examples": [{"inputs": "5.1,3.5,1.4,0.2"}]},
        400,
        "must be numeric",
    ),
    post(
        "tf-null-feature",
        f"{TF}:classify",
        classify_tf({"x": None}),
        400,
        "Feature: x has element with unexpected JSON type: Null",
    ),
    post(
        "tf-signature-name-not-string",
        f"{TF}:predict",
        {"signature_name": 5, "instances": [1.0]},
        400,
        "'signature_name' key must be a string value",
    ),
    # ---- ragged lists and wrong shapes -------------------------------------------------
    post(
        "tf-ragged-rows",
        f"{TF}:predict",
        {"instances": [[1.0], [1.0, 2.0]]},
        400,
        "Expecting tensor size: 1 but got: 2",
    ),
    post(
        "sk-ragged-rows",
        f"{SK}:predict",
        {"instances": [ROW, ROW[:3]]},
        400,
        "Expecting tensor size: 4 but got: 3",
    ),
    post(
        "tf-ragged-columns",
        f"{TF}:predict",
        {"inputs": [[1.0], [1.0, 2.0]]},
        400,
        "Encountered list at unexpected size: 2 at level: 1 expected size: 1",
    ),
    post(
        "sk-ragged-columns",
        f"{SK}:predict",
        {"inputs": [ROW, ROW[:3]]},
        400,
        "Encountered list at unexpected size: 3 at level: 1 expected size: 4",
    ),
    post(
        "tf-same-size-other-shape",
        f"{TF}:predict",
        {"instances": [[1.0, 2.0], [[3.0], [4.0]]]},
        400,
        "Expecting shape [2] but got: [2,1]",
    ),
    post(
        "tf-scalar-at-list-level",
        f"{TF}:predict",
        {"inputs": [[1.0], 2.0]},
        400,
        "found at incorrect level",
    ),
    post(
        "tf-list-below-leaf-level",
        f"{TF}:predict",
        {"inputs": [1.0, [2.0]]},
        400,
        "Encountered list at unexpected level",
    ),
    post("sk-wrong-inner-shape", f"{SK}:predict", {"instances": [[1.0, 2.0]]}, 400, "[-1,4]"),
    post("sk-rank-3", f"{SK}:predict", {"instances": [[ROW]]}, 400, "expected shape [-1,4]"),
    post(
        "sk-feature-with-two-values",
        f"{SK}:classify",
        {"examples": [{**FEATURES, "sepal_length": [5.1, 5.2]}]},
        400,
        "sepal_length",
    ),
    post(
        "tf-nested-list-feature",
        f"{TF}:classify",
        classify_tf({"x": [[1.0]]}),
        400,
        "Feature: x has element with unexpected JSON type: Array",
    ),
    # ---- missing or extra inputs --------------------------------------------------------
    post(
        "tf-missing-named-input",
        f"{TF}:predict",
        {"inputs": {"y": [1.0]}},
        400,
        "Missing named input: x in 'inputs' object.",
    ),
    post(
        "sk-missing-named-input",
        f"{SK}:predict",
        {"inputs": {"rows": [ROW]}},
        400,
        "Missing named input: inputs in 'inputs' object.",
    ),
    post(
        "tf-neither-inputs-nor-instances",
        f"{TF}:predict",
        {"signature_name": "serving_default"},
        400,
        "Missing 'inputs' or 'instances' key",
    ),
    post(
        "sk-both-inputs-and-instances",
        f"{SK}:predict",
        {"inputs": [ROW], "instances": [ROW]},
        400,
        "expecting only one of 'inputs' or 'instances' keys to exist",
    ),
    post(
        "tf-missing-examples",
        f"{TF}:regress",
        {"signature_name": "regress_x_to_y"},
        400,
        "key 'examples' is expected and was not found",
    ),
    post(
        "sk-missing-feature",
        f"{SK}:classify",
        {"examples": [{"sepal_length": 5.1}]},
        400,
        "sepal_width",
    ),
    post(
        "tf-extra-row-input",
        f"{TF}:predict",
        {"instances": [{"x": 1.0, "z": 2.0}]},
        400,
        "JSON object: does not have named input: z",
    ),
    post(
        "sk-extra-row-input",
        f"{SK}:predict",
        {"instances": [{"inputs": ROW, "z": 1.0}]},
        400,
        "JSON object: does not have named input: z",
    ),
    post(
        "sk-extra-feature",
        f"{SK}:classify",
        {"examples": [{**FEATURES, "extra": 2.0}]},
        400,
        "'extra' is not a feature of the model",
    ),
    # TF Serving ignores keys of the columnar object that are not inputs.
    post(
        "tf-extra-columnar-input-ignored",
        f"{TF}:predict",
        {"inputs": {"x": [1.0], "z": ["junk"]}},
        200,
        '"outputs"',
    ),
    post(
        "sk-extra-columnar-input-ignored",
        f"{SK}:predict",
        {"inputs": {"inputs": [ROW], "z": ["junk"]}},
        200,
        '"outputs"',
    ),
    # ---- bad base64 ---------------------------------------------------------------------
    post(
        "tf-b64-bad-characters",
        f"{TF}:classify",
        classify_tf({"x": {"b64": "!!!!"}}),
        400,
        "Unable to base64 decode",
    ),
    post(
        "tf-b64-url-safe-alphabet",
        f"{TF}:classify",
        classify_tf({"x": {"b64": "-_-_"}}),
        400,
        "Unable to base64 decode",
    ),
    post(
        "sk-b64-bad-characters",
        f"{SK}:classify",
        {"examples": [{"inputs": {"b64": "%%%"}}]},
        400,
        "Unable to base64 decode",
    ),
    post(
        "tf-b64-object-with-extra-key",
        f"{TF}:classify",
        classify_tf({"x": {"b64": "AAAA", "y": 1}}),
        400,
        "Feature: x has element with unexpected JSON type: Object",
    ),
    # ---- NaN and Infinity ---------------------------------------------------------------
    # DT_FLOAT takes NaN/±Infinity (also rapidjson's Inf/-Inf/-NaN) and writes bare tokens.
    post(
        "tf-nan-infinity-accepted",
        f"{TF}:predict",
        b'{"instances": [NaN, Infinity, -Infinity, Inf, -NaN]}',
        200,
        '"predictions": [NaN, Infinity, -Infinity, Infinity, NaN]',
    ),
    post(
        "tf-nan-feature-accepted",
        f"{TF}:classify",
        b'{"signature_name": "classify_x_to_y", "examples": [{"x": NaN}]}',
        200,
        '"results": [[["", NaN]]]',
    ),
    # LogisticRegression does not take them: a 400 that says so (not a 500).
    post(
        "sk-nan-rejected",
        f"{SK}:predict",
        b'{"instances": [[NaN, 3.5, 1.4, 0.2]]}',
        400,
        "Input X contains NaN",
    ),
    post(
        "sk-infinity-rejected",
        f"{SK}:predict",
        b'{"inputs": [[5.1, 3.5, 1.4, -Infinity]]}',
        400,
        "Input X contains infinity",
    ),
    post(
        "sk-nan-feature-rejected",
        f"{SK}:classify",
        b'{"examples": [{"inputs": [NaN, 3.5, 1.4, 0.2]}]}',
        400,
        "is NaN, which LogisticRegression does not accept",
    ),
    # ---- unknown signature, version, label, model ---------------------------------------
    post(
        "tf-unknown-signature",
        f"{TF}:predict",
        {"signature_name": "nope", "instances": [1.0]},
        400,
        'Serving signature name: "nope" not found in signature def',
    ),
    post(
        "tf-unknown-classify-signature",
        f"{TF}:classify",
        {"signature_name": "nope", "examples": [{"x": 1.0}]},
        400,
        "No signature was found with the name: nope",
    ),
    post(
        "tf-regress-on-classify-signature",
        f"{TF}:regress",
        classify_tf({"x": 1.0}),
        400,
        "No regression outputs found in SignatureDef",
    ),
    post(
        "sk-unknown-signature",
        f"{SK}:predict",
        {"signature_name": "fit", "instances": [ROW]},
        400,
        "Available signatures: decision_function, predict, predict_log_proba, predict_proba",
    ),
    post(
        "sk-unknown-classify-signature",
        f"{SK}:classify",
        {"signature_name": "nope", "examples": [FEATURES]},
        400,
        "No signature was found with the name: nope",
    ),
    post(
        "tf-unknown-version",
        f"{TF}/versions/999:predict",
        {"instances": [1.0]},
        404,
        "Servable not found for request: Specific(half_plus_two, 999)",
    ),
    post(
        "sk-unknown-version",
        f"{SK}/versions/9:predict",
        {"instances": [ROW]},
        404,
        "Servable not found for request: Specific(iris, 9)",
    ),
    get("tf-status-unknown-version", f"{TF}/versions/999", 404, "Could not find version 999"),
    get("sk-status-unknown-version", f"{SK}/versions/9", 404, "Could not find version 9"),
    post(
        "tf-version-overflows-int64",
        f"{TF}/versions/99999999999999999999:predict",
        {"instances": [1.0]},
        400,
        "Failed to convert version: 99999999999999999999 to numeric.",
    ),
    post(
        "tf-unknown-label",
        "/v1/models/two_versions/labels/nope:predict",
        {"instances": [1.0]},
        400,
        "Unrecognized servable version label: nope",
    ),
    post(
        "sk-unknown-label",
        f"{SK}/labels/nope:predict",
        {"instances": [ROW]},
        400,
        "Unrecognized servable version label: nope",
    ),
    get(
        "sk-unknown-label-metadata",
        f"{SK}/labels/nope/metadata",
        400,
        "Unrecognized servable version label: nope",
    ),
    get(
        "unknown-model-status", "/v1/models/nope", 404, "Could not find any versions of model nope"
    ),
    # ---- malformed paths ----------------------------------------------------------------
    post(
        "encoded-traversal-as-model-name",
        "/v1/models/..%2F..%2Fetc:predict",
        {"instances": [1.0]},
        404,
        "Servable not found for request: Latest(../../etc)",
    ),
    get(
        "encoded-traversal-metadata",
        "/v1/models/..%2F..%2Fetc%2Fpasswd/metadata",
        404,
        "Servable not found for request: Latest(../../etc/passwd)",
    ),
    get(
        "encoded-traversal-status",
        "/v1/models/..%2F..%2F..%2Ftmp",
        404,
        "Could not find any versions of model ../../../tmp",
    ),
    post(
        "encoded-dot-segments",
        "/v1/models/%2e%2e/%2e%2e/etc:predict",
        {"instances": [1.0]},
        400,
        "Malformed request: POST /v1/models/%2e%2e/%2e%2e/etc:predict",
    ),
    post(
        "tf-traversal-after-name",
        f"{TF}/%2e%2e/%2e%2e:predict",
        {"instances": [1.0]},
        400,
        "Malformed request",
    ),
    post(
        "sk-version-not-a-number",
        f"{SK}/versions/abc:predict",
        {"instances": [ROW]},
        400,
        "Malformed request: POST /v1/models/iris/versions/abc:predict",
    ),
    post(
        "sk-negative-version",
        f"{SK}/versions/-1:predict",
        {"instances": [ROW]},
        400,
        "Malformed request",
    ),
    post(
        "sk-label-with-slash",
        f"{SK}/labels/a/b:predict",
        {"instances": [ROW]},
        400,
        "Malformed request",
    ),
    post(
        "sk-label-dot-dot",
        f"{SK}/labels/..:predict",
        {"instances": [ROW]},
        400,
        "Unrecognized servable version label: ..",
    ),
    post(
        "tf-label-encoded-traversal",
        "/v1/models/two_versions/labels/..%2F..%2Fetc:predict",
        {"instances": [1.0]},
        400,
        "Unrecognized servable version label: ../../etc",
    ),
    post(
        "tf-version-and-label",
        "/v1/models/two_versions/versions/123/labels/stable:predict",
        {"instances": [1.0]},
        400,
        "Malformed request",
    ),
    post(
        "sk-bad-percent-escape",
        "/v1/models/iris%zz:predict",
        {"instances": [ROW]},
        400,
        "Failed to decode model name: iris%zz",
    ),
    post(
        "sk-invalid-utf8-escape",
        "/v1/models/iris%C3%28:predict",
        {"instances": [ROW]},
        400,
        "Failed to decode model name",
    ),
    post(
        "tf-nul-in-name",
        "/v1/models/half_plus_two%00:predict",
        {"instances": [1.0]},
        404,
        "Servable not found for request: Latest(half_plus_two\x00)",
    ),
    post(
        "tf-5000-character-name",
        "/v1/models/" + "a" * 5000 + ":predict",
        {"instances": [1.0]},
        404,
        "Servable not found for request: Latest(aaaa",
    ),
    post("sk-verb-upper-case", f"{SK}:Predict", {"instances": [ROW]}, 400, "Malformed request"),
    post("tf-unknown-verb", f"{TF}:explain", {"instances": [1.0]}, 400, "Malformed request"),
    post("tf-query-string", f"{TF}:predict?x=1", {"instances": [1.0]}, 400, "Malformed request"),
    get("tf-verb-on-get", f"{TF}:predict", 400, "Malformed request: GET"),
    get("no-model-name", "/v1/models/versions/1", 400, "Missing model name in request."),
    get("list-with-trailing-slash", "/v1/models/", 400, "Malformed request: GET /v1/models/"),
    Hostile("sk-delete", "DELETE", SK, b"", 400, "Malformed request: DELETE /v1/models/iris"),
    Hostile("tf-put", "PUT", f"{TF}:predict", b"{}", 400, "Malformed request: PUT"),
    # ---- invalid UTF-8 quoted back in the error: written as \xff, the body stays JSON ---
    post(
        "tf-invalid-utf8-string-value",
        f"{TF}:predict",
        b'{"instances": ["\xff\xfe"]}',
        400,
        'JSON Value: "\\xff\\xfe" Type: String is not of expected type: float',
    ),
    post(
        "sk-invalid-utf8-string-value",
        f"{SK}:predict",
        b'{"instances": [["\xff\xfe", 3.5, 1.4, 0.2]]}',
        400,
        "\\xff\\xfe",
    ),
    post(
        "tf-invalid-utf8-signature-name",
        f"{TF}:predict",
        b'{"signature_name": "\xff\xfe", "instances": [1.0]}',
        400,
        'Serving signature name: "\\xff\\xfe" not found in signature def',
    ),
    post(
        "sk-invalid-utf8-signature-name",
        f"{SK}:predict",
        b'{"signature_name": "\xff\xfe", "instances": [[5.1, 3.5, 1.4, 0.2]]}',
        400,
        "\\xff\\xfe",
    ),
    post(
        "tf-invalid-utf8-feature-name",
        f"{TF}:classify",
        b'{"signature_name": "classify_x_to_y", "examples": [{"x": 1.0, "\xff\xfe": 1.0}]}',
        400,
        "Feature name is not valid UTF-8: \\xff\\xfe",
    ),
    post(
        "tf-invalid-utf8-signature-name-classify",
        f"{TF}:classify",
        b'{"signature_name": "\xff\xfe", "examples": [{"x": 1.0}]}',
        400,
        "No signature was found with the name: \\xff\\xfe",
    ),
    post(
        "sk-invalid-utf8-feature-name",
        f"{SK}:classify",
        b'{"examples": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, '
        b'"petal_width": 0.2, "\xff\xfe": 1.0}]}',
        400,
        "'\\xff\\xfe' is not a feature of the model",
    ),
    post(
        "invalid-utf8-percent-encoded-model-name",
        "/v1/models/%ff%fe:predict",
        {"instances": [1.0]},
        400,
        "Failed to decode model name: %ff%fe",
    ),
]

# Set by the fixture below (a gateway with small limits); `max_body_bytes` leaves room for
# the other three to be reached first.
LIMITS = {
    "max_body_bytes": 4096,
    "max_json_depth": 8,
    "max_tensor_elements": 64,
    "max_string_bytes": 64,
}

LIMIT_CASES: list[Hostile] = [
    post(
        "tf-body-too-large",
        f"{TF}:predict",
        {"instances": [1.0] * 1000},
        413,
        "Request body too large: the limit is 4096 bytes",
    ),
    post(
        "sk-body-too-large",
        f"{SK}:predict",
        {"instances": [ROW] * 300},
        413,
        "Request body too large: the limit is 4096 bytes",
    ),
    post(
        "tf-too-deep",
        f"{TF}:predict",
        {"instances": [[[[[[[[[1.0]]]]]]]]]},
        400,
        "Request nests JSON 10 levels deep; the gateway allows 8 (max_json_depth)",
    ),
    post(
        "sk-too-deep-in-context",
        f"{SK}:classify",
        {"context": {"a": [[[[[[[[1]]]]]]]]}, "examples": [FEATURES]},
        400,
        "(max_json_depth)",
    ),
    post(
        "tf-too-many-elements",
        f"{TF}:predict",
        {"instances": [1.0] * 65},
        400,
        "Request has 65 tensor elements; the gateway allows 64 (max_tensor_elements)",
    ),
    post(
        "sk-too-many-elements",
        f"{SK}:predict",
        {"inputs": [ROW] * 17},
        400,
        "the gateway allows 64 (max_tensor_elements)",
    ),
    post(
        "sk-too-many-feature-values",
        f"{SK}:classify",
        {"examples": [{"inputs": ROW}] * 17},
        400,
        "(max_tensor_elements)",
    ),
    post(
        "tf-string-too-long",
        f"{TF}:classify",
        classify_tf({"x": "a" * 65}),
        400,
        "(max_string_bytes)",
    ),
    post(
        "tf-b64-too-long",
        f"{TF}:classify",
        classify_tf({"x": {"b64": "QUFB" * 40}}),
        400,
        "(max_string_bytes)",
    ),
    post(
        "sk-b64-too-long",
        f"{SK}:classify",
        {"examples": [{"inputs": {"b64": "QUFB" * 40}}]},
        400,
        "(max_string_bytes)",
    ),
]


def assert_safe_answer(
    case: Hostile, response: httpx.Response, extra_markers: tuple[str, ...]
) -> None:
    """TF Serving's status and message; JSON; nothing internal (unless the caller sent it)."""
    assert response.status_code == case.status, response.text[:2000]
    assert response.headers["content-type"] == "application/json"
    text = response.text
    if case.status >= 400:
        body = response.json()
        assert list(body) == ["error"], text[:2000]
        assert case.message in body["error"], text[:2000]
    else:
        assert case.message in text, text[:2000]
    sent = case.path + case.body.decode("latin-1")
    for marker in (*LEAK_MARKERS, *extra_markers):
        if marker not in sent:
            assert marker not in text, (marker, text[:2000])


async def assert_still_serves(http: httpx.AsyncClient) -> None:
    tf = await http.post(f"{TF}:predict", content=b'{"instances": [1.0]}')
    assert tf.status_code == 200, tf.text
    assert tf.json() == {"predictions": [2.5]}
    sk = await http.post(f"{SK}:predict", json={"instances": [ROW]})
    assert sk.status_code == 200, sk.text
    assert len(sk.json()["predictions"]) == 1


def leak_markers(compat_backend: EmbeddedTfServing, sklearn_models_dir: Path) -> tuple[str, ...]:
    return (compat_backend.target, str(sklearn_models_dir))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_hostile_request_gets_tf_serving_answer(
    client: httpx.AsyncClient,
    compat_backend: EmbeddedTfServing,
    sklearn_models_dir: Path,
    case: Hostile,
) -> None:
    response = await client.request(case.method, case.path, content=case.body)
    assert_safe_answer(case, response, leak_markers(compat_backend, sklearn_models_dir))
    await assert_still_serves(client)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def limited(gateway_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The same models behind a gateway with small input limits."""
    async with gateway_client(gateway_settings.model_copy(update=LIMITS)) as http:
        yield http


@pytest.mark.parametrize("case", LIMIT_CASES, ids=lambda case: case.id)
async def test_input_over_a_limit_is_refused(
    limited: httpx.AsyncClient,
    compat_backend: EmbeddedTfServing,
    sklearn_models_dir: Path,
    case: Hostile,
) -> None:
    response = await limited.request(case.method, case.path, content=case.body)
    assert_safe_answer(case, response, leak_markers(compat_backend, sklearn_models_dir))
    await assert_still_serves(limited)
