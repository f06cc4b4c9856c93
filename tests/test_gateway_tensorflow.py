"""TensorFlow models through the gateway, over real gRPC to a separate backend process.

Expected answers are TF Serving's own (shared/testdata/tfserving/NOTICE.md and
http_rest_api_handler_test.cc, cited in TFSERVING-REST-SPEC.md), on our own stand-ins for
its test models (tests/conftest.py TF_TEST_MODELS); the fidelity tests marked
`needs_tfserving_testdata` run on TF Serving's own exports (TF_SERVING_EXPORTS).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import TFSERVING_TESTDATA, needs_tfserving_testdata

pytestmark = pytest.mark.asyncio(loop_scope="session")


def compact(body: bytes) -> bytes:
    """The body without whitespace (TF Serving pretty-prints; whitespace carries no meaning)."""
    return re.sub(rb"\s+", b"", body)


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        (
            "/v1/models/half_plus_two:predict",
            {"instances": [2.0, 3.0, 4.0]},
            b'{"predictions":[3.0,3.5,4.0]}',
        ),
        (
            "/v1/models/half_plus_two:predict",
            {"inputs": [2.0, 3.0, 4.0]},
            b'{"outputs":[3.0,3.5,4.0]}',
        ),
        (
            "/v1/models/half_plus_two:classify",
            {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]},
            b'{"results":[[["",3.0]]]}',
        ),
        (
            "/v1/models/half_plus_two:regress",
            {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]},
            b'{"results":[3.0]}',
        ),
        (
            "/v1/models/half_plus_two:regress",
            {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]},
            b'{"results":[42.0]}',
        ),
        # A [2,2] batch for an input declared [-1,1]: TF Serving feeds it as is.
        (
            "/v1/models/half_plus_two:predict",
            {"instances": [[1.0, 2.0], [3.0, 4.0]]},
            b'{"predictions":[[2.5,3.0],[3.5,4.0]]}',
        ),
        pytest.param(
            "/v1/models/half_plus_two_tf2:predict",
            {"instances": [2.0, 3.0, 4.0]},
            b'{"predictions":[3.0,3.5,4.0]}',
            marks=needs_tfserving_testdata,
        ),
        pytest.param(
            "/v1/models/tfs_half_plus_two:predict",
            {"instances": [2.0, 3.0, 4.0]},
            b'{"predictions":[3.0,3.5,4.0]}',
            marks=needs_tfserving_testdata,
        ),
        ("/V1/MODELS/half_plus_two:predict", {"inputs": 2.0}, b'{"outputs":3.0}'),
        ("/v1/models/half_plus_three:predict", {"instances": [1, 2]}, b'{"predictions":[3.5,4.0]}'),
    ],
)
async def test_tf_serving_answers_hold(
    client: httpx.AsyncClient, path: str, body: dict[str, object], expected: bytes
) -> None:
    response = await client.post(path, content=json.dumps(body))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert compact(response.content) == expected


async def test_status_of_half_plus_two(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/half_plus_two")
    assert response.status_code == 200
    assert response.json() == {
        "model_version_status": [
            {
                "version": "123",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


@needs_tfserving_testdata
@pytest.mark.parametrize("model", ["tfs_half_plus_two", "half_plus_two"])  # theirs, ours
async def test_metadata_matches_tf_serving(client: httpx.AsyncClient, model: str) -> None:
    expected = json.loads((TFSERVING_TESTDATA / "half_plus_two_model_metadata.json").read_text())
    expected["model_spec"]["name"] = model  # TF Serving's test served it as "default"
    response = await client.get(f"/v1/models/{model}/metadata")
    assert response.status_code == 200
    assert response.json() == expected


@needs_tfserving_testdata
async def test_metadata_of_two_versions_matches_tf_serving(client: httpx.AsyncClient) -> None:
    expected = json.loads(
        (TFSERVING_TESTDATA / "saved_model_half_plus_two_2_versions_metadata.json").read_text()
    )
    expected["model_spec"]["name"] = "tfs_two_versions"
    response = await client.get("/v1/models/tfs_two_versions/versions/123/metadata")
    assert response.status_code == 200
    assert response.json() == expected


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("/v1/models/two_versions/metadata", "124"),
        ("/v1/models/two_versions/versions/123/metadata", "123"),
        ("/v1/models/two_versions/versions/00000124/metadata", "124"),
        ("/v1/models/two_versions/labels/stable/metadata", "123"),
        ("/v1/models/two_versions/labels/canary/metadata", "124"),
    ],
)
async def test_versions_and_labels_resolve(
    client: httpx.AsyncClient, path: str, version: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert response.json()["model_spec"]["version"] == version


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/two_versions/versions/123:predict",
        "/v1/models/two_versions/labels/canary:predict",
        "/v1/models/two_versions:predict",
    ],
)
async def test_predict_on_a_version_or_label(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, content=b'{"instances": [1.0]}')
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [2.5]}


async def test_status_lists_versions_newest_first_and_ignores_labels(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/v1/models/two_versions", "/v1/models/two_versions/labels/anything"):
        response = await client.get(path)
        assert response.status_code == 200
        versions = [item["version"] for item in response.json()["model_version_status"]]
        assert versions == ["124", "123"]
    one = await client.get("/v1/models/two_versions/versions/123")
    assert [item["version"] for item in one.json()["model_version_status"]] == ["123"]


async def test_failed_model_shows_in_status(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/bad_half_plus_two")
    assert response.status_code == 200
    (status,) = response.json()["model_version_status"]
    assert status["version"] == "123"
    assert status["state"] == "END"
    assert status["status"]["error_code"] != "OK"
    assert status["status"]["error_message"]
    # ...and predicting on it is a 404, while the other models keep serving.
    failed = await client.post("/v1/models/bad_half_plus_two:predict", content=b'{"inputs": [1]}')
    assert failed.status_code == 404
    ok = await client.post("/v1/models/half_plus_two:predict", content=b'{"inputs": [1]}')
    assert ok.status_code == 200


async def test_readiness_names_the_failed_model_without_server_paths(
    client: httpx.AsyncClient, tf_test_models: Path
) -> None:
    status = await client.get("/v1/models/bad_half_plus_two")
    message = status.json()["model_version_status"][0]["status"]["error_message"]
    testdata = str(tf_test_models)
    assert testdata in message  # TF Serving's own status names the path...
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    reason = ready.json()["models"]["bad_half_plus_two"]
    assert testdata not in ready.text  # ...but /readyz is open to anyone: no paths there.
    assert "<path>" in reason and "GET /v1/models/bad_half_plus_two" in reason
    head = await client.head("/readyz")  # HEAD: GET's status and headers, no body
    assert (head.status_code, head.content) == (503, b"")
    assert head.headers["content-length"] == str(len(ready.content))


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        (
            "POST",
            "/v1/models/nope:predict",
            b'{"instances": [1]}',
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            "POST",
            "/v1/models/half_plus_two/versions/999:predict",
            b'{"instances": [1]}',
            404,
            "Servable not found for request: Specific(half_plus_two, 999)",
        ),
        (
            "POST",
            "/v1/models/two_versions/labels/nope:predict",
            b'{"instances": [1]}',
            400,
            "Unrecognized servable version label: nope",
        ),
        ("POST", "/v1/models/half_plus_two:predict", b'{"instances": [1}', 400, "JSON Parse error"),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            b"",
            400,
            "JSON Parse error: The document is empty",
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            b'{"instances": ["a"]}',
            400,
            "is not of expected type: float",
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            b'{"instances": [[1], [1, 2]]}',
            400,
            "Expecting tensor size: 1 but got: 2",
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            b'{"signature_name": "nope", "inputs": [1]}',
            400,
            'Serving signature name: "nope" not found in signature def',
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            b'{"signature_name": 5, "inputs": [1]}',
            400,
            "'signature_name' key must be a string value.",
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            b'{"instances": []}',
            400,
            "No values in 'instances' array",
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            b'{"foo": 1}',
            400,
            "Missing 'inputs' or 'instances' key",
        ),
        (
            "POST",
            "/v1/models/half_plus_two:Predict",
            b'{"inputs": [1]}',
            400,
            "Malformed request: POST /v1/models/half_plus_two:Predict",
        ),
        (
            "POST",
            "/v1/models/half_plus_two:explain",
            b'{"inputs": [1]}',
            400,
            "Malformed request: POST /v1/models/half_plus_two:explain",
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict?x=1",
            b'{"inputs": [1]}',
            400,
            "Malformed request: POST /v1/models/half_plus_two:predict?x=1",
        ),
        (
            "GET",
            "/v1/models/half_plus_two:predict",
            None,
            400,
            "Malformed request: GET /v1/models/half_plus_two:predict",
        ),
        (
            "DELETE",
            "/v1/models/half_plus_two",
            None,
            400,
            "Malformed request: DELETE /v1/models/half_plus_two",
        ),
        ("GET", "/v1/models/labels/x", None, 400, "Missing model name in request."),
        (
            "GET",
            "/v1/models/half_plus_two/versions/99999999999999999999",
            None,
            400,
            "Failed to convert version: 99999999999999999999 to numeric.",
        ),
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        (
            "GET",
            "/v1/models/half_plus_two/versions/7",
            None,
            404,
            "Could not find version 7 of model half_plus_two",
        ),
        (
            "GET",
            "/v1/models/nope/metadata",
            None,
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            "GET",
            "/v1/models/two_versions/labels/nope/metadata",
            None,
            400,
            "Unrecognized servable version label: nope",
        ),
        # TF Serving resolves a label before it looks the model up (R8): an unknown model
        # has no labels. Status ignores labels, so it still says the model is unknown.
        (
            "GET",
            "/v1/models/nope/labels/x/metadata",
            None,
            400,
            "Unrecognized servable version label: x",
        ),
        (
            "POST",
            "/v1/models/nope/labels/x:predict",
            b'{"instances": [1]}',
            400,
            "Unrecognized servable version label: x",
        ),
        (
            "POST",
            "/v1/models/nope/labels/x:regress",
            b'{"examples": [{"x": 1.0}]}',
            400,
            "Unrecognized servable version label: x",
        ),
        ("POST", "/v1/models/nope/labels/x:predict", b'{"instances": [1}', 400, "JSON Parse error"),
        ("GET", "/v1/models/nope/labels/x", None, 404, "Could not find any versions of model nope"),
        (
            "POST",
            "/v1/models/half_plus_two:classify",
            b'{"signature_name": "classify_x_to_y"}',
            400,
            "key 'examples' is expected and was not found",
        ),
        (
            "POST",
            "/v1/models/half_plus_two:regress",
            b'{"examples": []}',
            400,
            "'examples' value is an empty array",
        ),
    ],
)
async def test_errors_are_tf_servings(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: bytes | None,
    status: int,
    message: str,
) -> None:
    response = await client.request(method, path, content=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]


async def test_encoded_model_name_is_decoded(client: httpx.AsyncClient) -> None:
    # %5F is "_": the name is matched encoded and then percent-decoded (R6).
    response = await client.post("/v1/models/half%5Fplus%5Ftwo:predict", content=b'{"inputs": 1}')
    assert response.status_code == 200, response.text
    assert compact(response.content) == b'{"outputs":2.5}'


async def test_options_preflight(client: httpx.AsyncClient) -> None:
    allowed = await client.options("/v1/models/half_plus_two", headers={"Origin": "http://a.b"})
    assert allowed.status_code == 200
    refused = await client.options("/v1/models/half_plus_two", headers={"Origin": "a.b"})
    assert refused.status_code == 400
