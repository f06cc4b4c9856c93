"""Gateway configuration: one YAML file listing the models, overridable by GATEWAY_* env vars.

Precedence, highest first: explicit arguments, environment (`GATEWAY_PORT=9000`,
`GATEWAY_TF_SERVING_TARGET=tfserving:8500`), the YAML file, the defaults below.
Relative `base_path`s in the YAML file are resolved against the file's directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from clients.pipeline_plan import PipelineDefinition, PipelineStep
from clients.tf_targets import TargetError, parse_target
from clients.types import ModelSource, VersionPolicy

# A model name or label: no path separators, no ':' (it would break the URL grammar).
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class VersionPolicyConfig(BaseModel):
    """Which versions to serve: `latest` (the newest `num_versions`), `all`, or `specific`."""

    kind: Literal["latest", "all", "specific"] = "latest"
    num_versions: int = Field(default=1, ge=1)
    versions: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _specific_needs_versions(self) -> VersionPolicyConfig:
        if self.kind == "specific" and not self.versions:
            raise ValueError("version_policy kind 'specific' needs a non-empty 'versions' list")
        return self


Platform = Literal["tensorflow", "sklearn", "pipeline"]
"""Which backend serves a model (`gateway.registry.PLATFORMS` builds each)."""


class PipelineStepConfig(BaseModel):
    """One step of a pipeline: a configured model and how it links to the next step."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="a configured tensorflow or sklearn model")
    version: int | None = Field(default=None, description="pin a version (default: latest)")
    label: str | None = Field(default=None, description="or pin a version label")
    signature: str = Field(
        default="", description="signature (sklearn: its method, e.g. transform); '' = default"
    )
    input: str | None = Field(
        default=None,
        description="the input that takes the previous step's output (default: the only one)",
    )
    output: str | None = Field(
        default=None,
        description="the output that feeds the next step (default: the only one); on the "
        "last step, the one output the pipeline answers with (default: all)",
    )

    def step(self) -> PipelineStep:
        """The neutral step the pipeline backend takes."""
        return PipelineStep(
            self.model, self.version, self.label, self.signature, self.input, self.output
        )


class ModelConfig(BaseModel):
    """One served model."""

    name: str
    platform: Platform
    base_path: str = Field(
        default="",
        description="Directory holding <version>/ subdirectories (not for pipelines).",
    )
    steps: list[PipelineStepConfig] = Field(
        default_factory=list,
        description="pipeline only: the models to call in order, each output feeding the next",
    )
    target: str | None = Field(
        default=None,
        description="gRPC target URI of the TF Serving that serves this model (tensorflow "
        "only; default: the global tf_serving_target, else the embedded backend).",
    )
    version_policy: VersionPolicyConfig = Field(default_factory=VersionPolicyConfig)
    version_labels: dict[str, int] = Field(default_factory=dict)
    allow_pickle: bool = Field(
        default=False,
        description="sklearn only: allow joblib/pickle artifacts (they run code when loaded). "
        "Off by default: only skops artifacts with trusted types load.",
    )
    sha256: dict[int, str] = Field(
        default_factory=dict,
        description="sklearn only: version -> SHA-256 hex digest its artifact file "
        "(model.joblib or model.skops) must have before it is loaded.",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not _NAME_PATTERN.match(name):
            raise ValueError(f"model name {name!r} must match {_NAME_PATTERN.pattern}")
        return name

    @model_validator(mode="after")
    def _fits_platform(self) -> ModelConfig:
        if self.platform == "pipeline":
            if not self.steps:
                raise ValueError(f"pipeline {self.name} needs a non-empty 'steps' list")
            if self.base_path or self.target:
                raise ValueError(f"pipeline {self.name} has no base_path or target")
        else:
            if self.steps:
                raise ValueError(f"model {self.name}: 'steps' are for platform pipeline")
            if not self.base_path:
                raise ValueError(f"model {self.name} needs a base_path")
        return self

    @field_validator("target")
    @classmethod
    def _valid_model_target(cls, target: str | None) -> str | None:
        return _valid_target(target)

    @field_validator("version_labels")
    @classmethod
    def _valid_labels(cls, labels: dict[str, int]) -> dict[str, int]:
        for label in labels:
            if not _NAME_PATTERN.match(label):
                raise ValueError(f"version label {label!r} must match {_NAME_PATTERN.pattern}")
        return labels

    def pipeline(self) -> PipelineDefinition:
        """The neutral pipeline description (platform pipeline)."""
        return PipelineDefinition(self.name, tuple(step.step() for step in self.steps))

    def source(self) -> ModelSource:
        """The neutral description the backends take."""
        policy = self.version_policy
        return ModelSource(
            name=self.name,
            base_path=self.base_path,
            version_policy=VersionPolicy(
                kind=policy.kind, num_versions=policy.num_versions, versions=tuple(policy.versions)
            ),
            version_labels=dict(self.version_labels),
            allow_pickle=self.allow_pickle,
            sha256={version: digest.lower() for version, digest in self.sha256.items()},
        )


class Settings(BaseSettings):
    """Everything the gateway reads at start-up."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8000
    tf_serving_target: str | None = Field(
        default=None,
        description="gRPC target URI of an external TF Serving for tensorflow models "
        "(host:port, dns:///name:port, ipv4:a:port,b:port, unix:path); calls are balanced "
        "over every address. Unset = start the embedded TF-Serving-compatible backend.",
    )
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    grpc_max_message_bytes: int = Field(default=2**31 - 1, gt=0)
    metadata_ttl_seconds: float = Field(default=1.0, ge=0)
    sklearn_workers: int = Field(default=4, ge=1)
    embedded_port: int = Field(default=0, ge=0, description="0 = any free loopback port")
    embedded_poll_seconds: float = Field(default=1.0, ge=0)
    embedded_start_timeout_seconds: float = Field(default=180.0, gt=0)
    log_level: str = "info"
    models: list[ModelConfig] = Field(default_factory=list)

    # --- Processes ---
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes")
    shutdown_drain_seconds: float = Field(
        default=0.0,
        ge=0,
        description="after SIGTERM, answer /readyz 503 for this long before closing the "
        "listener (lets a load balancer stop sending); in-flight requests always finish",
    )

    # --- Limits on hostile or oversized input ---
    max_body_bytes: int = Field(
        default=64 * 2**20, gt=0, description="request body, after gzip decoding: else 413"
    )
    max_json_depth: int = Field(default=64, gt=0, description="JSON nesting depth: else 400")
    max_header_bytes: int = Field(
        default=32 * 1024,
        ge=1024,
        description="request line and headers together: else 431 (a longer URL alone: 414)",
    )

    # --- Connections ---
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="from a connection's start (or a request's first byte) to the end of "
        "its headers: else 408, or closed if it sent nothing",
    )
    keepalive_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="how long an idle keep-alive connection stays open between requests "
        "(behind a load balancer, make it longer than the balancer's idle timeout)",
    )
    max_connections: int = Field(
        default=2048,
        ge=1,
        description="open connections per process; beyond it a new one is answered 503 "
        "with Retry-After at once (lowered to fit the file descriptor limit)",
    )
    codec_processes: int = Field(
        default=2,
        ge=0,
        description="worker processes that parse big request bodies and render big "
        "responses off the event loop (0 = everything on the event loop)",
    )
    codec_offload_bytes: int = Field(
        default=2**20,
        ge=0,
        description="a body of at least this many bytes, or a response of at least this "
        "many bytes of tensor data, is coded in a worker process",
    )
    max_tensor_elements: int = Field(
        default=16 * 2**20, gt=0, description="elements in one request's tensors: else 400"
    )
    max_string_bytes: int = Field(
        default=16 * 2**20, gt=0, description="one JSON string (e.g. base64 bytes): else 400"
    )

    # --- Deadlines, retries and load shedding ---
    max_request_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="cap on a caller's X-Request-Timeout header (seconds)",
    )
    tf_retry_max_attempts: int = Field(
        default=5, ge=1, le=5, description="gRPC attempts per TF call on UNAVAILABLE (1 = none)"
    )
    # 0.1 + 0.2 + 0.4 + 0.8 s: the retries outlast the channel's 1 s reconnect backoff, so a
    # call made while the channel waits to reconnect to a restarted TF Serving still succeeds.
    tf_retry_initial_backoff_seconds: float = Field(default=0.1, gt=0)
    tf_retry_max_backoff_seconds: float = Field(default=1.0, gt=0)
    tf_status_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="how often every TF Serving replica is asked for its models' status "
        "(what /readyz and /backends show; probes never wait on a backend)",
    )
    tf_dns_refresh_seconds: float = Field(
        default=30.0,
        ge=0,
        description="how often a TF Serving target is resolved again, so replicas added "
        "behind a DNS name get calls within this time; 0 = only at start",
    )
    tf_ejection_seconds: float = Field(
        default=30.0,
        gt=0,
        description="how long a TF Serving replica whose calls fail is set aside (outlier "
        "ejection; longer each time it is ejected again)",
    )
    max_concurrent_per_model: int = Field(
        default=256,
        ge=1,
        description="requests in the backend per model; beyond it 429 with Retry-After",
    )
    max_concurrent_requests: int = Field(
        default=1024, ge=1, description="requests in the gateway; beyond it 503 with Retry-After"
    )

    # --- scikit-learn lifecycle and batching ---
    sklearn_poll_seconds: float = Field(
        default=1.0, ge=0, description="rescan sklearn base paths for versions; 0 = never"
    )
    batching_enabled: bool = Field(default=True, description="merge concurrent sklearn calls")
    batch_max_size: int = Field(default=64, ge=1, description="rows in one merged call")
    batch_max_wait_ms: float = Field(
        default=0.0,
        ge=0,
        description="longest a request waits for others to join its batch; 0 = never wait, "
        "batch only what queued while the estimator was busy",
    )
    batch_inline_below_ms: float = Field(
        default=1.0,
        ge=0,
        description="run a model's merged calls on the event loop while they take less than "
        "this (no thread hand-off); slower models use the sklearn_workers pool; 0 = always pool",
    )

    # --- Security ---
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="if set, model endpoints need `Authorization: Bearer <key>` or "
        "`X-API-Key: <key>`; health and metrics stay open",
    )
    cors_allow_origins: list[str] = Field(
        default_factory=list, description="origins allowed by CORS; empty = CORS off"
    )

    # --- Observability ---
    log_format: Literal["json", "text"] = "json"
    access_log: bool = Field(default=True, description="one JSON log line per request")

    @field_validator("tf_serving_target")
    @classmethod
    def _valid_global_target(cls, target: str | None) -> str | None:
        return _valid_target(target)

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        names = [model.name for model in self.models]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicates)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then the YAML file (if any)."""
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))


def _valid_target(target: str | None) -> str | None:
    if target is not None:
        try:
            parse_target(target)
        except TargetError as error:
            raise ValueError(str(error)) from None
    return target


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read `config_file` (YAML) under the environment and `overrides`."""
    if config_file is None:
        return Settings(**overrides)
    config_file = config_file.resolve()
    if not config_file.is_file():
        raise FileNotFoundError(f"config file not found: {config_file}")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(yaml_file=config_file)

    loaded = _FromFile(**overrides)
    for model in loaded.models:
        if model.base_path:
            model.base_path = str((config_file.parent / model.base_path).resolve())
    return loaded
