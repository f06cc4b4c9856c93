"""FastAPI echo with a pydantic request body: validates TF Serving's row format, returns it.

Run: ``uvicorn bench.servers.fastapi_echo:app --loop uvloop --http httptools --no-access-log``.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel


class PredictBody(BaseModel):
    """``{"instances": [[...], ...]}``."""

    instances: list[list[float]]


app = FastAPI()


@app.post("/{path:path}")
async def echo(path: str, body: PredictBody) -> PredictBody:
    """Return the validated body."""
    return body
