"""`GET /v1/models`: the configured models as KServe V1 lists them (`{"models": [...]}`).

TF Serving answers 400 "Missing model name in request." there; the gateway answers the
list, through the same edge (API keys, metrics, access log) as every /v1/ request. Other
methods and `/v1/models/` (trailing slash) keep TF Serving's 400 "Malformed request".
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.settings import Settings
from tests.conftest import gateway_client, sklearn_model_configs

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_lists_every_configured_model_in_config_order(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    response = await client.get("/v1/models")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"models": [model.name for model in gateway_settings.models]}
    assert {"half_plus_two", "iris"} <= set(response.json()["models"])
    assert (await client.get("/V1/MODELS")).json() == response.json()  # as the grammar: any case


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/v1/models/", "Malformed request: GET /v1/models/"),
        ("GET", "/v1/models?all=1", "Malformed request: GET /v1/models?all=1"),
        ("POST", "/v1/models", "Malformed request: POST /v1/models"),
        ("PUT", "/v1/models", "Malformed request: PUT /v1/models"),
        ("DELETE", "/v1/models", "Malformed request: DELETE /v1/models"),
        ("GET", "/v1/models/versions/1", "Missing model name in request."),
    ],
)
async def test_other_forms_keep_tf_servings_400(
    client: httpx.AsyncClient, method: str, path: str, message: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": message}


@pytest.fixture
async def keyed(sklearn_models_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(models=sklearn_model_configs(sklearn_models_dir), api_keys=["key-one"])
    async with gateway_client(settings) as http:
        yield http


async def test_needs_an_api_key_when_keys_are_set(keyed: httpx.AsyncClient) -> None:
    missing = await keyed.get("/v1/models")
    assert missing.status_code == 401, missing.text
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = await keyed.get("/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    good = await keyed.get("/v1/models", headers={"Authorization": "Bearer key-one"})
    assert good.status_code == 200, good.text
    assert good.json() == {"models": ["iris", "diabetes"]}


def _list_count(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_requests_total"
        and sample.labels.get("verb") == "list"
        and sample.labels.get("code") == "200"
    )


async def test_is_counted_as_verb_list_and_logged(
    client: httpx.AsyncClient, access_lines: io.StringIO
) -> None:
    before = _list_count((await client.get("/metrics")).text)
    response = await client.get("/v1/models", headers={"X-Request-ID": "list-1"})
    assert response.status_code == 200
    after = _list_count((await client.get("/metrics")).text)
    assert after - before == 1
    lines = [json.loads(raw) for raw in access_lines.getvalue().splitlines()]
    [line] = [line for line in lines if line.get("request_id") == "list-1"]
    assert (line["path"], line["verb"], line["status"]) == ("/v1/models", "list", 200)
    assert line["bytes_out"] == len(response.content)


async def test_is_documented_in_openapi(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/models"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ModelListResponse"}
    listed = spec["components"]["schemas"]["ModelListResponse"]
    assert listed["properties"]["models"] == {
        "items": {"type": "string"},
        "title": "Models",
        "type": "array",
    }
    assert listed["required"] == ["models"]
