"""CPU-heavy codec work in worker processes, so one big request cannot stall the event loop.

Parsing a 64 MB JSON body or writing millions of numbers is a long C call that holds the
GIL: a thread would stall the loop just the same. So such work runs in a small pool of
worker processes ("spawn": the parent's gRPC threads are never forked). Only pure
functions of picklable arguments go there (the JSON codecs). What crosses is the body's
bytes one way and numpy arrays (or the response bytes) the other, as files in shared
memory (`gateway.shared_buffers`): no big copy is made with the GIL held, so the loop
keeps serving while they cross.

Workers run without the cyclic garbage collector (see `_run_in_worker`).
Small work stays inline: the hop to a worker costs more than decoding a small body.
`heavy(size)` is the one rule for what counts as big (`codec_offload_bytes`).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import multiprocessing
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import ParamSpec, TypeVar, cast

from clients.types import Code, ServingError
from gateway import shared_buffers

logger = logging.getLogger(__name__)
_P = ParamSpec("_P")
_T = TypeVar("_T")


class Offloader:
    """Runs a pure function inline or, for big inputs, in a worker process."""

    def __init__(self, processes: int, min_bytes: int) -> None:
        self._min_bytes = min_bytes
        self._processes = processes
        self._pool = self._new_pool() if processes > 0 else None
        self._directory = shared_buffers.new_directory() if processes > 0 else Path()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=gc.disable,
        )

    def heavy(self, size: int) -> bool:
        """Whether work on `size` bytes goes to a worker process."""
        return self._pool is not None and size >= self._min_bytes

    async def run(
        self, size: int, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """`function(*args, **kwargs)`: inline when `size` is small, else in a worker."""
        if self._pool is None or not self.heavy(size):
            return function(*args, **kwargs)
        loop = asyncio.get_running_loop()
        payload = await loop.run_in_executor(
            None, shared_buffers.dumps, (function, args, kwargs), self._directory, self._min_bytes
        )
        pool = self._pool
        try:
            future = pool.submit(_run_in_worker, payload, self._directory, self._min_bytes)
        except BrokenProcessPool:
            shared_buffers.discard(payload)
            raise self._replace_broken(pool) from None
        abandoned = False

        def free_if_abandoned(done: Future[bytes]) -> None:
            if done.cancelled():
                shared_buffers.discard(payload)  # never started: its input files remain
            elif abandoned and done.exception() is None:
                shared_buffers.discard(done.result())

        future.add_done_callback(free_if_abandoned)
        try:
            result = await asyncio.wrap_future(future)
        except asyncio.CancelledError:  # the request's deadline, or its client went away
            abandoned = True
            raise
        except BrokenProcessPool:
            raise self._replace_broken(pool) from None
        return cast(_T, await loop.run_in_executor(None, shared_buffers.loads, result))

    def _replace_broken(self, pool: ProcessPoolExecutor) -> ServingError:
        """A worker died (killed, out of memory): the pool refuses all work from then on.
        Replace it, once for everyone, and tell this request to retry."""
        if self._pool is pool:
            logger.error("a codec worker process died; starting new ones")
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        return ServingError(Code.UNAVAILABLE, "The worker process coding this request died; retry")

    async def warm_up(self, modules: tuple[str, ...]) -> None:
        """Start the workers and import `modules` in them now, so the first big request
        waits for neither."""
        if self._pool is None:
            return
        loop = asyncio.get_running_loop()
        starts = [
            loop.run_in_executor(self._pool, _import_all, modules) for _ in range(self._processes)
        ]
        await asyncio.gather(*starts)

    def close(self) -> None:
        """Stop the workers at once (work in flight is abandoned: the server is stopping).

        They are terminated rather than waited for: the interpreter's exit joins the pool,
        and a worker still starting (importing numpy on a busy machine) held a stopping
        gateway for tens of seconds; their work is pure, so nothing is lost."""
        if self._pool is not None:
            workers = list((self._pool._processes or {}).values())  # private, but stable
            self._pool.shutdown(wait=False, cancel_futures=True)
            for worker in workers:
                worker.terminate()
            shutil.rmtree(self._directory, ignore_errors=True)


def _run_in_worker(payload: bytes, directory: Path, min_bytes: int) -> bytes:
    """Run a pickled call in a worker; its result pickled the same way.

    Workers run with the garbage collector off: parsing a big body builds millions of
    lists and floats, and the collector's passes over them tripled the parse time (64 MB:
    0.9 s without, 2.9 s with). The JSON values hold no cycles, so reference counting
    frees them; an error's traceback does, so collect after one."""
    function, args, kwargs = cast(
        tuple[Callable[..., object], tuple[object, ...], dict[str, object]],
        shared_buffers.loads(payload),
    )
    try:
        result = function(*args, **kwargs)
    except BaseException:
        gc.collect()
        raise
    return shared_buffers.dumps(result, directory, min_bytes)


def _import_all(modules: tuple[str, ...]) -> None:
    for module in modules:
        importlib.import_module(module)
