"""`tfserving-compat` / `python -m tfserving_compat`: a TF-Serving-compatible gRPC server.

Startup follows tensorflow_model_server: parse flags, read the model list, load every
model's aspired versions (a failed load counts as done: that version reports END with
its error), check the version labels, then open the port. SIGTERM/SIGINT stop it
gracefully (in-flight RPCs get a few seconds, then every session is closed).

Why the synchronous `grpc.server` with a thread pool rather than `grpc.aio`: every RPC
ends in `Session.run`, which releases the GIL, so plain worker threads run models in
parallel; with grpc.aio each call would have to be handed to a thread pool anyway.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import FrameType

from tfserving_compat.config import ModelConfig, ServerOptions, load_model_configs, parse_flags
from tfserving_compat.errors import ServingError

_LOG = logging.getLogger("tfserving_compat")
INT32_MAX = 2**31 - 1
_SHUTDOWN_GRACE_S = 5.0


# Taken at import, before the slow model loading, so a parent that dies meanwhile is noticed.
_PARENT_PID = os.getppid()


def _bind_address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"{host}:{port}"


def _fail(error: ServingError | str, options: ServerOptions) -> int:
    """Reports a startup failure the way tensorflow_model_server does (as one JSON record
    only, with --log_format=json)."""
    message = str(error)
    if options.log_format != "json":
        print(f"Failed to start server. Error: {message}", file=sys.stderr)
    _LOG.error("Failed to start server. Error: %s", message)
    return 1


def _configure_logging(log_format: str) -> None:
    """Log records to stderr, as text or as JSON lines with the gateway's field names.

    Done before TensorFlow is imported: TF's Python logger adds a handler of its own when
    the root logger has none yet, and every TF record would then be printed twice."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        renames = {"asctime": "time", "levelname": "level", "name": "logger"}
        fields = "%(asctime)s %(levelname)s %(name)s %(message)s"
        handler.setFormatter(JsonFormatter(fields, rename_fields=renames))
        logging.captureWarnings(True)  # Python warnings as records, not plain text
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the server until SIGTERM/SIGINT; returns the process exit code."""
    options = parse_flags(argv)
    _configure_logging(options.log_format)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        configs = load_model_configs(options)
    except ServingError as exc:
        return _fail(exc, options)
    return _run(options, configs)


def _run(options: ServerOptions, configs: list[ModelConfig]) -> int:
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    from tfserving_compat.loader import load_version
    from tfserving_compat.manager import ModelManager
    from tfserving_compat.service import ModelServicer, PredictionServicer

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    loader = functools.partial(
        load_version,
        tags=options.saved_model_tags,
        intra_op_threads=options.tensorflow_intra_op_parallelism,
        inter_op_threads=options.tensorflow_inter_op_parallelism,
    )
    manager = ModelManager(
        configs, loader, options.max_num_load_retries, options.load_retry_interval_micros / 1e6
    )
    for config in configs:
        _LOG.info("Adding model %s from %s", config.name, config.base_path)
    manager.load_initial(max_threads=4 * (os.cpu_count() or 1))
    try:
        manager.validate_labels(options.allow_version_labels_for_unavailable_models)
    except ServingError as exc:
        manager.stop()
        return _fail(exc, options)

    executor = ThreadPoolExecutor(max_workers=options.grpc_max_threads, thread_name_prefix="grpc")
    server = grpc.server(
        executor,
        options=[
            ("grpc.max_send_message_length", INT32_MAX),
            ("grpc.max_receive_message_length", INT32_MAX),
            ("grpc.so_reuseport", 0),
            *options.grpc_channel_arguments,
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(manager, options.enable_signature_method_name_check), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(manager), server)
    address = _bind_address(options.host, options.port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        bound, reason = 0, str(exc)
    else:
        reason = "port in use or address not available"
    if bound == 0:
        manager.stop()
        return _fail(f"could not listen on {address}: {reason}", options)

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        _LOG.info("Received signal %d, shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    _LOG.info("Running gRPC ModelServer at %s ...", address)
    if options.file_system_poll_wait_seconds > 0:
        manager.start_polling(float(options.file_system_poll_wait_seconds))
    while not stop.wait(1.0):
        if options.exit_with_parent and os.getppid() != _PARENT_PID:
            _LOG.warning("The parent process %d is gone, shutting down", _PARENT_PID)
            break
    server.stop(grace=_SHUTDOWN_GRACE_S).wait()
    executor.shutdown(wait=False)
    manager.stop()
    _LOG.info("Server stopped")
    return 0
