"""Running the gateway under uvicorn: a graceful drain on SIGTERM, and worker processes.

On SIGTERM (or Ctrl+C) /readyz turns 503 at once while everything else keeps being
served for `shutdown_drain_seconds`, so a load balancer stops sending; then the
listener closes, in-flight requests finish (for up to `request_timeout_seconds` + 5 s),
the lifespan shutdown closes the backends, and the process exits 0.

With `workers` > 1 this process is a supervisor: it binds the socket, starts the
embedded TF backend once (the workers reach it as their `tf_serving_target`), gives
the workers a fresh PROMETHEUS_MULTIPROC_DIR, runs them, restarts any that crash, and
on SIGTERM stops them (each drains as above), then the backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

from clients.embedded import EmbeddedTfServing
from gateway import tracing
from gateway.app import begin_shutdown, create_app
from gateway.http_protocol import ConnectionLimits, guarded_protocol, usable_connections
from gateway.registry import embedded_tf_models
from gateway.settings import Settings

logger = logging.getLogger(__name__)

LoggingSetup = Callable[[Settings], None]

# uvicorn's exit status for a worker that could not start (bad config, port in use...).
STARTUP_FAILURE = 3
PROMETHEUS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with a readiness drain before its graceful shutdown."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_signal: Callable[[], None],
        drain_seconds: float,
        parent_pid: int | None = None,
    ) -> None:
        super().__init__(config)
        self._on_signal = on_signal
        self._drain_seconds = drain_seconds
        self._stop_at: float | None = None
        self._parent_pid = parent_pid

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: start draining. A second Ctrl+C ends the drain, a third forces exit.

        The signal is not re-raised after the shutdown (uvicorn's default): a graceful
        stop exits with status 0.
        """
        if self._stop_at is None:
            self._on_signal()
            self._stop_at = time.monotonic() + self._drain_seconds
            logger.info(
                "shutting down: /readyz answers 503; serving for %g s more, then draining",
                self._drain_seconds,
            )
        elif sig == signal.SIGINT:
            self.force_exit = self.should_exit
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        """Exit when the drain is over, or when the supervisor that started us is gone."""
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            self.should_exit = True
        if self._parent_pid is not None and os.getppid() != self._parent_pid:
            self.should_exit = True
        return await super().on_tick(counter)


def serve(settings: Settings, setup_logging: LoggingSetup) -> None:
    """Serve until SIGTERM/SIGINT: in this process, or in `settings.workers` workers."""
    if settings.workers > 1:
        Supervisor(settings, setup_logging).run()
        return
    _draining_server(settings).run()


def _draining_server(settings: Settings, parent_pid: int | None = None) -> DrainingServer:
    """The app for `settings` in a DrainingServer, configured as the gateway runs it."""
    tracing.configure()  # from the OTEL_* environment; off unless OTEL_TRACES_EXPORTER is set
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # the gateway configures logging itself
        access_log=False,  # the gateway's own access log replaces uvicorn's
        proxy_headers=False,  # nothing here uses the client's address or scheme
        server_header=False,  # no Server header: nothing to fingerprint
        timeout_graceful_shutdown=math.ceil(settings.request_timeout_seconds) + 5,
        timeout_keep_alive=settings.keepalive_timeout_seconds,  # type: ignore[arg-type]
        http=guarded_protocol(
            ConnectionLimits(
                header_timeout_seconds=settings.header_timeout_seconds,
                max_header_bytes=settings.max_header_bytes,
                max_connections=usable_connections(settings.max_connections),
            )
        ),
    )
    on_signal = functools.partial(begin_shutdown, app)
    return DrainingServer(config, on_signal, settings.shutdown_drain_seconds, parent_pid)


def _run_worker(
    settings: Settings, sock: socket.socket, setup_logging: LoggingSetup, parent_pid: int
) -> None:
    """A worker process: the app on the supervisor's socket."""
    setup_logging(settings)
    _draining_server(settings, parent_pid).run(sockets=[sock])


class Supervisor:
    """Runs `settings.workers` worker processes on one socket, and the embedded backend."""

    def __init__(self, settings: Settings, setup_logging: LoggingSetup) -> None:
        self._settings = settings
        self._setup_logging = setup_logging
        self._context = multiprocessing.get_context("spawn")
        self._failed = False
        self._workers: list[BaseProcess] = []

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT; exits with status 3 if a worker could not start."""
        asyncio.run(self._run())
        if self._failed:
            raise SystemExit(STARTUP_FAILURE)

    async def _run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        settings = self._settings
        sock = _bind(settings.host, settings.port)
        embedded = _embedded_backend(settings)
        metrics_dir = None
        if PROMETHEUS_DIR_ENV not in os.environ:
            metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
            os.environ[PROMETHEUS_DIR_ENV] = metrics_dir
        announcer = None
        try:
            if embedded is not None:
                embedded.start()
                embedded.supervise()  # restarted if it dies, as with one process
                announcer = asyncio.create_task(_announce(embedded, settings))
                settings = settings.model_copy(update={"tf_serving_target": embedded.target})
            # A plain Settings (not load_settings' per-file subclass) pickles to the workers.
            worker_settings = Settings.model_validate(settings.model_dump())
            self._workers = [self._spawn(worker_settings, sock) for _ in range(settings.workers)]
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                if not stop.is_set() and not self._replace_dead(worker_settings, sock):
                    stop.set()
        finally:
            await asyncio.to_thread(self._stop_workers)
            if announcer is not None:
                announcer.cancel()
            if embedded is not None:
                embedded.stop()
            sock.close()
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)

    def _spawn(self, settings: Settings, sock: socket.socket) -> BaseProcess:
        process = self._context.Process(
            target=_run_worker,
            args=(settings, sock, self._setup_logging, os.getpid()),
            name="gateway-worker",
        )
        process.start()
        logger.info("started worker process %s", process.pid)
        return process

    def _replace_dead(self, settings: Settings, sock: socket.socket) -> bool:
        """Restart crashed workers; False when one could not even start (a broken setup)."""
        for index, process in enumerate(self._workers):
            if process.is_alive():
                continue
            if process.exitcode == STARTUP_FAILURE:
                logger.error("worker %s failed to start; stopping", process.pid)
                self._failed = True
                return False
            logger.error(
                "worker %s died (exit %s); starting another", process.pid, process.exitcode
            )
            _forget_metrics_of(process.pid)
            self._workers[index] = self._spawn(settings, sock)
        return True

    def _stop_workers(self) -> None:
        """SIGTERM every worker (each drains and finishes its requests), then wait."""
        for process in self._workers:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        settings = self._settings
        patience = settings.shutdown_drain_seconds + settings.request_timeout_seconds + 15
        deadline = time.monotonic() + patience
        for process in self._workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.error(
                    "worker %s did not stop within %g s; killing it", process.pid, patience
                )
                process.kill()
                process.join()


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts on."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        logger.error("cannot listen on %s:%s: %s", host, port, error)
        raise SystemExit(STARTUP_FAILURE) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    logger.info("listening on http://%s:%d", host, sock.getsockname()[1])
    return sock


def _embedded_backend(settings: Settings) -> EmbeddedTfServing | None:
    """The backend for TensorFlow models with no TF Serving configured, if there are any."""
    models = embedded_tf_models(settings)
    if not models:
        return None
    return EmbeddedTfServing(
        [model.source() for model in models],
        port=settings.embedded_port,
        poll_seconds=settings.embedded_poll_seconds,
    )


async def _announce(embedded: EmbeddedTfServing, settings: Settings) -> None:
    timeout = settings.embedded_start_timeout_seconds
    if await embedded.wait_until_listening(timeout):
        logger.info("embedded TF-Serving-compatible backend is serving on %s", embedded.target)
    else:
        logger.error("embedded TF-Serving-compatible backend did not start within %g s", timeout)


def _forget_metrics_of(pid: int | None) -> None:
    """Tell prometheus_client's multiprocess mode that a dead worker's gauges are stale."""
    if pid is not None and PROMETHEUS_DIR_ENV in os.environ:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
