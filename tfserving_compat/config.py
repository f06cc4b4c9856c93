"""Command-line flags and the model list, as tensorflow_model_server reads them.

Flag names and defaults follow tensorflow_serving/model_servers/main.cc and server.h.
The model list comes either from --model_name/--model_base_path (main.cc
BuildSingleModelConfig) or from a text-proto ModelServerConfig (--model_config_file),
validated like server_core.cc (ValidateModelConfigList, GetPlatform).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tfserving_compat.errors import invalid_argument, not_found

PolicyKind = Literal["latest", "all", "specific"]
TENSORFLOW_PLATFORM = "tensorflow"


@dataclass(frozen=True)
class ModelConfig:
    """One served model: where its versions live, which to serve, and its labels."""

    name: str
    base_path: str
    policy: PolicyKind = "latest"
    num_latest: int = 1
    specific_versions: frozenset[int] = frozenset()
    labels: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerOptions:
    """Everything the command line sets."""

    port: int
    host: str
    model_name: str
    model_base_path: str
    model_config_file: str
    file_system_poll_wait_seconds: int
    grpc_max_threads: int
    allow_version_labels_for_unavailable_models: bool
    enable_signature_method_name_check: bool
    max_num_load_retries: int
    load_retry_interval_micros: int
    saved_model_tags: tuple[str, ...]
    tensorflow_intra_op_parallelism: int
    tensorflow_inter_op_parallelism: int
    exit_with_parent: bool = False
    grpc_channel_arguments: tuple[tuple[str, int | str], ...] = ()
    log_format: str = "text"


def _parse_bool(text: str) -> bool:
    """Parses a boolean flag value the way TensorFlow's flag parser does."""
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value: {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; unknown flags and abbreviations are rejected."""
    parser = argparse.ArgumentParser(
        prog="tfserving-compat",
        description="TensorFlow Serving compatible gRPC model server (Python, real TensorFlow).",
        allow_abbrev=False,
    )
    add = parser.add_argument
    add("--port", type=int, default=8500, help="gRPC port to listen on (default 8500)")
    add("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    add("--model_name", default="default", help="model name (ignored with --model_config_file)")
    add("--model_base_path", default="", help="model base path (ignored with --model_config_file)")
    add("--model_config_file", default="", help="text-proto ModelServerConfig file")
    add(
        "--file_system_poll_wait_seconds",
        type=int,
        default=1,
        help="seconds between polls of the base paths for versions; 0 = load once",
    )
    add(
        "--grpc_max_threads",
        type=int,
        default=4 * (os.cpu_count() or 1),
        help="max gRPC worker threads (default 4 * CPUs)",
    )
    add(
        "--allow_version_labels_for_unavailable_models",
        type=_parse_bool,
        nargs="?",
        const=True,
        default=False,
        help="allow labels on versions that are not available",
    )
    add(
        "--exit_with_parent",
        type=_parse_bool,
        nargs="?",
        const=True,
        default=False,
        help="not in TF Serving: exit when the parent process dies (the gateway's embedded "
        "backend uses it so a killed gateway leaves no orphan)",
    )
    add(
        "--log_format",
        choices=("text", "json"),
        default="text",
        help="not in TF Serving: log lines on stderr as text (default) or as JSON objects with "
        "the gateway's fields (time, level, logger, message); the embedded backend uses json",
    )
    add(
        "--enable_signature_method_name_check",
        type=_parse_bool,
        nargs="?",
        const=True,
        default=False,
        help="check SignatureDef method_name for predict/classify/regress",
    )
    add(
        "--max_num_load_retries",
        type=int,
        default=0,
        help="retries after a failed load (TF Serving: 5; here 0, see README of the package)",
    )
    add(
        "--load_retry_interval_micros",
        type=int,
        default=60_000_000,
        help="interval between load retries, in microseconds",
    )
    add(
        "--grpc_channel_arguments",
        default="",
        help="comma-separated key=value gRPC server arguments, e.g. "
        "grpc.max_connection_age_ms=2000 (integer values are passed as integers)",
    )
    add("--saved_model_tags", default="serve", help="comma-separated MetaGraphDef tags")
    add("--tensorflow_intra_op_parallelism", type=int, default=0, help="0 = auto")
    add("--tensorflow_inter_op_parallelism", type=int, default=0, help="0 = auto")
    return parser


def parse_grpc_channel_arguments(text: str) -> tuple[tuple[str, int | str], ...]:
    """TF Serving's --grpc_channel_arguments: `key=value` pairs split on commas; a value
    that parses as an integer is passed as one, any other as a string."""
    arguments: list[tuple[str, int | str]] = []
    for item in filter(None, text.split(",")):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError(f"--grpc_channel_arguments: {item!r} is not key=value")
        try:
            arguments.append((key, int(value)))
        except ValueError:
            arguments.append((key, value))
    return tuple(arguments)


def parse_flags(argv: Sequence[str] | None = None) -> ServerOptions:
    """Parses the command line; exits with a usage error on unknown or bad flags."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if not 0 < ns.port < 65536:
        parser.error("--port must be in 1..65535")
    if ns.grpc_max_threads < 1:
        parser.error("--grpc_max_threads must be at least 1")
    if not ns.model_base_path and not ns.model_config_file:
        # server.cc BuildAndStart
        parser.error(
            "Both server_options.model_base_path and server_options.model_config_file are empty!"
        )
    tags = tuple(t for t in ns.saved_model_tags.split(",") if t)
    try:
        channel_arguments = parse_grpc_channel_arguments(ns.grpc_channel_arguments)
    except ValueError as error:
        parser.error(str(error))
    return ServerOptions(
        grpc_channel_arguments=channel_arguments,
        port=ns.port,
        host=ns.host,
        model_name=ns.model_name,
        model_base_path=ns.model_base_path,
        model_config_file=ns.model_config_file,
        file_system_poll_wait_seconds=ns.file_system_poll_wait_seconds,
        grpc_max_threads=ns.grpc_max_threads,
        allow_version_labels_for_unavailable_models=ns.allow_version_labels_for_unavailable_models,
        enable_signature_method_name_check=ns.enable_signature_method_name_check,
        max_num_load_retries=max(ns.max_num_load_retries, 0),
        load_retry_interval_micros=ns.load_retry_interval_micros,
        saved_model_tags=tags,
        tensorflow_intra_op_parallelism=ns.tensorflow_intra_op_parallelism,
        tensorflow_inter_op_parallelism=ns.tensorflow_inter_op_parallelism,
        exit_with_parent=ns.exit_with_parent,
        log_format=ns.log_format,
    )


def load_model_configs(options: ServerOptions) -> list[ModelConfig]:
    """The validated model list, from the config file or the single-model flags."""
    if not options.model_config_file:
        single = ModelConfig(name=options.model_name, base_path=options.model_base_path)
        _validate([(single, TENSORFLOW_PLATFORM)])
        return [single]
    try:
        with open(options.model_config_file, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise not_found(f"{options.model_config_file}; {exc.strerror}") from exc
    return parse_model_config_text(text, options.model_config_file)


def parse_model_config_text(text: str, source: str = "<string>") -> list[ModelConfig]:
    """Parses a text-proto ModelServerConfig into validated `ModelConfig`s."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    proto = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as exc:
        raise invalid_argument(f"Invalid protobuf file: '{source}': {exc}") from exc
    kind = proto.WhichOneof("config")
    if kind is None:
        return []  # server_core.cc: "Taking no action for empty config."
    if kind != "model_config_list":
        raise invalid_argument("ModelServer does not yet support custom model config.")
    pairs = [_from_proto(entry) for entry in proto.model_config_list.config]
    _validate(pairs)
    return [config for config, _ in pairs]


def _from_proto(entry: object) -> tuple[ModelConfig, str]:
    """Converts one ModelConfig proto; returns it with its platform name."""
    policy_proto = entry.model_version_policy  # type: ignore[attr-defined]
    choice = policy_proto.WhichOneof("policy_choice")
    policy: PolicyKind = "latest"
    num_latest, specific = 1, frozenset[int]()
    if choice == "all":
        policy = "all"
    elif choice == "specific":
        policy, specific = "specific", frozenset(int(v) for v in policy_proto.specific.versions)
    elif choice == "latest":
        # file_system_storage_path_source.cc serves max(num_versions, 1) versions.
        num_latest = max(int(policy_proto.latest.num_versions), 1)
    config = ModelConfig(
        name=entry.name,  # type: ignore[attr-defined]
        base_path=entry.base_path,  # type: ignore[attr-defined]
        policy=policy,
        num_latest=num_latest,
        specific_versions=specific,
        labels=dict(entry.version_labels),  # type: ignore[attr-defined]
    )
    return config, _platform(entry)


def _platform(entry: object) -> str:
    """server_core.cc GetPlatform: model_platform, or the deprecated model_type."""
    model_type = int(entry.model_type)  # type: ignore[attr-defined]
    platform = str(entry.model_platform)  # type: ignore[attr-defined]
    if model_type != 0:
        if platform:
            raise invalid_argument(
                "Illegal setting both ModelServerConfig::model_type (deprecated) "
                "and ModelServerConfig::model_platform."
            )
        if model_type == 1:  # ModelType.TENSORFLOW
            return TENSORFLOW_PLATFORM
        raise invalid_argument(f"ModelServerConfig::model_type choice {model_type} not supported.")
    if not platform:
        raise invalid_argument(
            "Illegal setting neither ModelServerConfig::model_type (deprecated) "
            "nor ModelServerConfig::model_platform."
        )
    return platform


def _validate(pairs: Sequence[tuple[ModelConfig, str]]) -> None:
    """server_core.cc ValidateModelConfigList and CreateStoragePathRoutes."""
    seen: set[str] = set()
    for config, _ in pairs:
        if config.name in seen:
            raise invalid_argument(
                f"Illegal to list model {config.name} multiple times in config list"
            )
        seen.add(config.name)
    for config, _ in pairs:
        if not os.path.isabs(config.base_path) and "://" not in config.base_path:
            raise invalid_argument(
                f"Expected model {config.name} to have an absolute path or URI; "
                f"got base_path()={config.base_path}"
            )
    for config, platform in pairs:
        if platform != TENSORFLOW_PLATFORM:
            raise invalid_argument(f"Model {config.name} requests unsupported platform {platform}")
