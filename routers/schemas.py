"""Request and response shapes of the v1 API, for the OpenAPI docs only.

The endpoints read raw bytes and parse them with the gateway's codec (TF Serving's
exact rules, errors and messages); these pydantic models exist so `/docs` shows
real schemas and examples. They never validate a request.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    """`instances` (row format) or `inputs` (columnar format), never both."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"instances": [1.0, 2.0, 5.0]},
                {"signature_name": "predict_proba", "instances": [[5.1, 3.5, 1.4, 0.2]]},
                {"inputs": {"x": [[1.0], [2.0]]}},
            ]
        }
    )

    signature_name: str | None = Field(
        default=None, description='Signature to run; default "serving_default".'
    )
    instances: list[Any] | None = Field(
        default=None,
        description="Row format: one item per example (a value, a list, or an object of "
        'named inputs). Binary strings as {"b64": "..."}. Answered with `predictions`.',
    )
    inputs: Any = Field(
        default=None,
        description="Columnar format: the input tensor, or an object of named input tensors. "
        "Answered with `outputs`.",
    )


class PredictResponse(BaseModel):
    """`predictions` for a row request, `outputs` for a columnar one."""

    predictions: list[Any] | None = None
    outputs: Any = None


class ExamplesRequest(BaseModel):
    """Classify and regress: tf.Example-like feature maps."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]},
                {
                    "examples": [
                        {
                            "sepal_length": 5.1,
                            "sepal_width": 3.5,
                            "petal_length": 1.4,
                            "petal_width": 0.2,
                        }
                    ]
                },
            ]
        }
    )

    signature_name: str | None = None
    context: dict[str, Any] | None = Field(
        default=None, description="Features shared by every example."
    )
    examples: list[dict[str, Any]] = Field(
        description="Each example maps feature names to a value or a flat list of values."
    )


class ClassifyResponse(BaseModel):
    """One list of [label, score] pairs per example."""

    results: list[list[list[Any]]]


class RegressResponse(BaseModel):
    """One value per example."""

    results: list[float]


class ErrorResponse(BaseModel):
    """Every error: a message that says what to fix."""

    error: str


class VersionStatusJson(BaseModel):
    """One version's state."""

    version: str
    state: str
    status: dict[str, str]


class ModelStatusResponse(BaseModel):
    """Every tracked version of a model, newest first."""

    model_version_status: list[VersionStatusJson]


class ModelMetadataResponse(BaseModel):
    """The served version and its signature defs (TF Serving's GetModelMetadata)."""

    model_spec: dict[str, str]
    metadata: dict[str, Any]


class ModelListResponse(BaseModel):
    """The configured models' names, in configuration order (KServe V1's list models)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"models": ["half_plus_two"]}]})

    models: list[str]
