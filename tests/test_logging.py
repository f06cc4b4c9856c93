"""Structured logs: the access line, JSON and text formats, request ids on every record."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import httpx
import pytest

from gateway.app import create_app
from gateway.logs import RequestIdFilter
from gateway.settings import Settings
from tests.conftest import REPO, gateway_client

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


async def test_access_log_line_is_json_without_body_or_secrets(
    client: httpx.AsyncClient, access_lines: io.StringIO
) -> None:
    secret, api_key, marker = "s3cr3t-token", "k3y-value", 4.56789
    response = await client.post(
        "/v1/models/iris:predict",
        json={"instances": [[marker, 3.5, 1.4, 0.2]]},
        headers={"Authorization": f"Bearer {secret}", "X-API-Key": api_key, "X-Request-ID": "r1"},
    )
    assert response.status_code == 200, response.text
    text = access_lines.getvalue()
    assert secret not in text and api_key not in text and str(marker) not in text
    [line] = [json.loads(raw) for raw in text.splitlines()]
    assert line["logger"] == "gateway.access" and line["level"] == "INFO"
    expected = {
        "request_id": "r1",
        "method": "POST",
        "path": "/v1/models/iris:predict",
        "model": "iris",
        "signature": "serving_default",
        "verb": "predict",
        "status": 200,
        "bytes_in": len(response.request.content),
        "bytes_out": len(response.content),
    }
    assert {key: line[key] for key in expected} == expected
    assert line["version"].isdigit()
    for key in ("duration_ms", "parse_ms", "backend_ms", "render_ms"):
        assert isinstance(line[key], float | int) and line[key] >= 0


async def test_no_access_log_when_disabled(
    gateway_settings: Settings, access_lines: io.StringIO
) -> None:
    settings = gateway_settings.model_copy(update={"access_log": False})
    async with gateway_client(settings) as http:
        response = await http.post("/v1/models/iris:predict", json={"instances": [IRIS_ROW]})
    assert response.status_code == 200
    assert access_lines.getvalue() == ""


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_configure_logging_formats_and_tags_request_ids(log_format: str) -> None:
    script = (
        "import logging\n"
        "from clients.context import CALL_CONTEXT, CallContext\n"
        "from gateway.logs import configure_logging\n"
        "from gateway.settings import Settings\n"
        f"configure_logging(Settings(log_format={log_format!r}, log_level='debug'))\n"
        "logging.getLogger('uvicorn.error').info('started')\n"
        "CALL_CONTEXT.set(CallContext(request_id='req-7'))\n"
        "logging.getLogger('some.module').warning('inside %s', 'a request')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    if log_format == "json":
        first, second = (json.loads(line) for line in lines)
        assert first["logger"] == "uvicorn.error" and first["message"] == "started"
        assert "request_id" not in first
        assert second["request_id"] == "req-7" and second["message"] == "inside a request"
        assert second["level"] == "WARNING"
    else:
        assert lines[0].endswith("INFO uvicorn.error [-]: started")
        assert lines[1].endswith("WARNING some.module [req-7]: inside a request")


async def test_unexpected_exception_is_a_500_with_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug (here: a request before the lifespan ran) is a plain 500, logged with its id."""
    app = create_app(Settings())  # its lifespan never runs: no data plane
    caplog.handler.addFilter(RequestIdFilter())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        response = await http.post(
            "/v1/models/iris:predict", json={"instances": [1]}, headers={"X-Request-ID": "bug-1"}
        )
    assert response.status_code == 500
    assert response.json() == {"error": "Internal error; the gateway logged the details"}
    assert response.headers["x-request-id"] == "bug-1"
    [logged] = [record for record in caplog.records if record.exc_info]
    assert logged.__dict__["request_id"] == "bug-1"
    assert "Traceback" not in response.text
