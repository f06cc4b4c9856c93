"""Request and response shapes of the Open Inference Protocol (v2), for the OpenAPI docs.

Like `routers.schemas` for v1: the endpoints decode raw bytes themselves
(`gateway.oip.decode`); these models only give `/docs` and schemathesis the schemas.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clients.dtypes import V2_DATATYPES

Datatype = Literal[V2_DATATYPES]  # type: ignore[valid-type]


class RequestInput(BaseModel):
    """One input tensor: flat or nested `data`, or `binary_data_size` bytes of the body."""

    name: str
    shape: list[int] = Field(description="Sizes of the tensor's dimensions.")
    datatype: Datatype = Field(description="FP32, FP64, INT64, BYTES, BOOL, ...")
    parameters: dict[str, Any] | None = Field(
        default=None, description='{"binary_data_size": n}: the data is binary, after the JSON.'
    )
    data: list[Any] | None = Field(default=None, description="Row-major values, flat or nested.")


class RequestOutput(BaseModel):
    """An output to return; `{"binary_data": true}` returns it as binary data."""

    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """An inference request. `parameters.signature_name` picks a signature."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "1",
                    "inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}],
                },
                {
                    "inputs": [
                        {
                            "name": "inputs",
                            "shape": [1, 4],
                            "datatype": "FP64",
                            "data": [5.1, 3.5, 1.4, 0.2],
                        }
                    ],
                    "outputs": [{"name": "predict_proba"}],
                },
            ]
        }
    )

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    """One output tensor, its data flat and row-major (or binary, after the JSON)."""

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferResponse(BaseModel):
    """An inference response."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    """An input or output: its name, datatype and shape (-1: any size)."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadataResponse(BaseModel):
    """A model's versions, platform, and its default signature's inputs and outputs."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadataResponse(BaseModel):
    """The server's name, version and protocol extensions."""

    name: str
    version: str
    extensions: list[str]


class LiveResponse(BaseModel):
    """Server liveness."""

    live: bool


class ReadyResponse(BaseModel):
    """Server readiness (400 with `ready: false` and the reason when not ready)."""

    ready: bool
    error: str | None = None


class ModelReadyResponse(BaseModel):
    """Model readiness (400 with `ready: false` and the reason when not ready)."""

    name: str
    ready: bool
    error: str | None = None
