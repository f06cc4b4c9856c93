"""The core's bounds on every model call: per-model concurrency (429) and the deadline (504)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.settings import Settings
from tests.conftest import gateway_client, sklearn_model_configs

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


async def test_requests_beyond_the_model_limit_are_shed_with_429(
    sklearn_models_dir: Path,
) -> None:
    settings = Settings(
        max_concurrent_per_model=1, models=sklearn_model_configs(sklearn_models_dir)
    )
    async with gateway_client(settings) as http:
        responses = await asyncio.gather(
            *(http.post("/v1/models/iris:predict", json=ROW) for _ in range(12))
        )
        statuses = sorted(response.status_code for response in responses)
        assert 200 in statuses and 429 in statuses, statuses
        assert set(statuses) == {200, 429}
        shed = next(response for response in responses if response.status_code == 429)
        assert "max_concurrent_per_model" in shed.json()["error"]
        # Shedding is momentary: once the burst is over, iris serves again.
        after = await http.post("/v1/models/iris:predict", json=ROW)
        assert after.status_code == 200, after.text


async def test_a_passed_deadline_gives_504(
    sklearn_models_dir: Path,
) -> None:
    settings = Settings(models=sklearn_model_configs(sklearn_models_dir))
    async with gateway_client(settings) as http:
        headers = {"X-Request-Timeout": "0.000001"}
        response = await http.post("/v1/models/iris:predict", json=ROW, headers=headers)
        assert response.status_code == 504, response.text
        assert "deadline" in response.json()["error"]
        assert (await http.post("/v1/models/iris:predict", json=ROW)).status_code == 200
