"""CPU-heavy codec work in worker processes, so one big request cannot stall the event loop.

Parsing a 64 MB JSON body or writing millions of numbers is a long C call that holds the
GIL: a thread would stall the loop just the same. So such work runs in a small pool of
worker processes ("spawn": the parent's gRPC threads are never forked). Only pure
functions of picklable arguments go there (the JSON codecs); what crosses is the body's
bytes one way and numpy arrays (or the response bytes) the other, a copy costing about a
millisecond per 10 MB on the loop instead of seconds of parsing.

Small work stays inline: the hop to a worker costs more than decoding a small body.
`heavy(size)` is the one rule for what counts as big (`codec_offload_bytes`).
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Offloader:
    """Runs a pure function inline or, for big inputs, in a worker process."""

    def __init__(self, processes: int, min_bytes: int) -> None:
        self._min_bytes = min_bytes
        self._processes = processes
        self._pool: ProcessPoolExecutor | None = None
        if processes > 0:
            self._pool = ProcessPoolExecutor(
                max_workers=processes, mp_context=multiprocessing.get_context("spawn")
            )

    def heavy(self, size: int) -> bool:
        """Whether work on `size` bytes goes to a worker process."""
        return self._pool is not None and size >= self._min_bytes

    async def run(
        self, size: int, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """`function(*args, **kwargs)`: inline when `size` is small, else in a worker."""
        if self._pool is None or size < self._min_bytes:
            return function(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(function, *args, **kwargs))

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
        """Stop the workers (work in flight is abandoned: the server is stopping)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _import_all(modules: tuple[str, ...]) -> None:
    for module in modules:
        importlib.import_module(module)
