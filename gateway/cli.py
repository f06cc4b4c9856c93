"""Command line: `gateway serve [--config FILE]` and `gateway build-examples`."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from clients.child_logs import forward_child_logs
from gateway import server
from gateway.logs import configure_logging
from gateway.settings import Settings, load_settings

logger = logging.getLogger("gateway")

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "config.yaml"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `gateway` command and of `python -m gateway`."""
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the REST gateway")
    serve.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("GATEWAY_CONFIG"),
        help="YAML config (env GATEWAY_CONFIG); default: the example models, built if missing",
    )
    serve.add_argument("--host", help="bind address (env GATEWAY_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (env GATEWAY_PORT, default 8000)")
    serve.add_argument(
        "--workers", type=int, help="worker processes (env GATEWAY_WORKERS, default 1)"
    )

    build = commands.add_parser("build-examples", help="build the example models")
    build.add_argument("--out", type=Path, default=DEFAULT_CONFIG.parent / "models")

    args = parser.parse_args(argv)
    if args.command == "build-examples":
        logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
        build_examples(args.out)
    else:
        overrides = {
            key: value for key in ("host", "port", "workers") if (value := getattr(args, key))
        }
        serve_forever(_settings(args.config, overrides))


def _settings(config: Path | None, overrides: dict[str, object]) -> Settings:
    settings = load_settings(config or DEFAULT_CONFIG, **overrides)
    configure_logging(settings)  # every line from here on, the build's too, in its format
    if config is None and any(not Path(model.base_path).is_dir() for model in settings.models):
        build_examples(DEFAULT_CONFIG.parent / "models")
    return settings


def build_examples(out: Path) -> None:
    """Build the example models into `out` in a child process (it imports TensorFlow),
    whose log lines are logged again here, in this process's format (clients/child_logs.py)."""
    logger.info("building the example models into %s (takes a minute the first time)", out)
    command = [sys.executable, "-m", "examples.build", "--out", str(out)]
    with subprocess.Popen([*command, "--log-format", "json"], stderr=subprocess.PIPE) as child:
        assert child.stderr is not None
        forward_child_logs(child.stderr, "examples.build").join()
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, command)


def serve_forever(settings: Settings) -> None:
    """Run the gateway with uvicorn until SIGTERM/SIGINT (see gateway.server)."""
    configure_logging(settings)
    server.serve(settings, configure_logging)  # workers (`--workers` > 1) set up the same
