"""Adaptive micro-batching: concurrent calls of one row-wise model method become one call.

A `Batcher` serves one (model version, operation). Requests queue their rows; when the model
is idle the queue is dispatched at the end of the current event-loop tick (so requests that
arrived together share one call, and a lone request is not held back), and requests that
queue while a call runs are merged into the next call. With `max_wait_ms` > 0 a batch that
is not yet full is held for at most that long after its first request, waiting for company.
Time spent queued behind a running call of the same model is queueing, not waiting.

One batch is one job in the thread pool and one wake-up of the event loop, unless the model
is cheap: a batcher whose merged calls have been taking less than `inline_below_ms` (a moving
average of the measured calls) runs them on the event loop itself, which saves the hand-off
to a thread and the wait for the GIL on the way back (for a linear model, most of the cost).
A model that gets slower goes back to the pool at once. The merged rows
run as one estimator call; each request gets its row slice of the result. If the merged call
raises (or does not return one result row per input row), every request of the batch runs
again on its own, so a bad request gets its own error and the others are unaffected.
Requests are merged only when their rows have the same trailing shape and dtype.

Estimators built on BLAS matrix products (linear models, PCA, MLPs, ...) may differ from a
one-request call in the last bit or two of a float: BLAS picks kernels by matrix size. Trees and
other per-row arithmetic are bit-identical. `enabled=False` turns batching off.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import Generic, TypeVar

import numpy as np

__all__ = ["BatchStats", "Batcher", "BatchingOptions", "RowCall", "RowOp", "Submit"]

_T = TypeVar("_T")
RowOp = Callable[[np.ndarray], np.ndarray]
"""Rows in, one result row per input row out (leading dimension = rows)."""
Submit = Callable[[Callable[[], None]], None]
"""Run a job in the thread pool (raises when the pool is not running)."""
_Outcome = np.ndarray | BaseException


@dataclass(frozen=True)
class BatchingOptions:
    """How concurrent requests are merged.

    `max_size`: most rows in one merged call (bigger requests run on their own);
    `max_wait_ms`: longest an idle model holds a batch for more requests (0 = never);
    `max_concurrent`: merged calls of one model method running at once;
    `inline`: always run merged calls on the event loop instead of the pool;
    `inline_below_ms`: run them on the event loop while they take less than this (0 = never).
    """

    enabled: bool = True
    max_size: int = 64
    max_wait_ms: float = 0.0
    max_concurrent: int = 1
    inline: bool = False
    inline_below_ms: float = 0.0

    def __post_init__(self) -> None:
        """Reject sizes below 1 and negative waits."""
        if (
            self.max_size < 1
            or self.max_concurrent < 1
            or self.max_wait_ms < 0
            or self.inline_below_ms < 0
        ):
            raise ValueError(f"invalid batching options: {self}")


@dataclass
class BatchStats:
    """Counters of one backend's batching, updated on the event loop only."""

    batches: int = 0
    """Merged estimator calls (a batch of one request included)."""
    requests: int = 0
    """Requests answered through a batcher."""
    rows: int = 0
    fallbacks: int = 0
    """Requests re-run on their own because their merged call failed."""
    solo: int = 0
    """Requests that did not batch: batching off, too big, or a method that is not row-wise."""
    sizes: Counter[int] = field(default_factory=Counter)
    """Requests merged per call -> how many calls."""


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~2 us per request
class RowCall(Generic[_T]):
    """A batchable request: run operation `key` on rows `x`, then `finish` its result rows."""

    key: str
    x: np.ndarray
    finish: Callable[[np.ndarray], _T]


@dataclass(eq=False, slots=True)
class _Item:
    x: np.ndarray
    future: asyncio.Future[np.ndarray]
    arrival: float
    shape: tuple[tuple[int, ...], np.dtype[np.generic]]


class Batcher:
    """Merges concurrent calls of one operation of one model version."""

    def __init__(
        self, op: RowOp, options: BatchingOptions, stats: BatchStats, submit: Submit
    ) -> None:
        """`op` runs in the pool via `submit` (or inline); `stats` may be shared."""
        self._op = op
        self._options = options
        self._wait = options.max_wait_ms / 1000
        self._stats = stats
        self._submit = submit
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._in_flight = 0
        self._pump_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._inline_below = options.inline_below_ms / 1000
        self._cost: float | None = None  # moving average of a merged call, in seconds

    def submit(self, x: np.ndarray) -> asyncio.Future[np.ndarray]:
        """Queue `x` (1 to `max_size` rows); the future gets this request's result rows."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.append(_Item(x, future, loop.time(), (x.shape[1:], x.dtype)))
        self._queued_rows += len(x)
        if not self._pump_scheduled:
            self._pump_scheduled = True
            loop.call_soon(self._pump)
        return future

    def _pump(self) -> None:
        """Start every batch that may start now; arm the timer for one that must wait."""
        self._pump_scheduled = False
        while self._queue and self._in_flight < self._options.max_concurrent:
            if self._wait and self._queued_rows < self._options.max_size:
                loop = self._queue[0].future.get_loop()
                due = self._queue[0].arrival + self._wait
                if loop.time() < due:
                    if self._timer is None:
                        self._timer = loop.call_at(due, self._on_timer)
                    return
            self._start(self._take())

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    def _take(self) -> list[_Item]:
        """The longest run of queued requests, in order, that fits one call."""
        batch: list[_Item] = []
        rows = 0
        shape = self._queue[0].shape
        while self._queue:
            item = self._queue[0]
            if item.shape != shape or rows + len(item.x) > self._options.max_size:
                break
            self._queue.popleft()
            self._queued_rows -= len(item.x)
            if not item.future.cancelled():
                batch.append(item)
                rows += len(item.x)
        return batch

    def _start(self, batch: list[_Item]) -> None:
        if not batch:
            return
        stats = self._stats
        stats.batches += 1
        stats.requests += len(batch)
        stats.rows += sum(len(item.x) for item in batch)
        stats.sizes[len(batch)] += 1
        if self.runs_inline:
            started = perf_counter()
            outcomes, fell_back = _execute(self._op, [item.x for item in batch])
            self._observe(perf_counter() - started)
            self._finish(batch, outcomes, fell_back)
            return
        self._in_flight += 1
        loop = batch[0].future.get_loop()
        try:
            self._submit(partial(self._work, batch, loop))
        except Exception as exc:
            self._in_flight -= 1
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)

    def _work(self, batch: list[_Item], loop: asyncio.AbstractEventLoop) -> None:
        """In the pool: run the batch, hand every outcome back to the loop in one wake-up."""
        started = perf_counter()
        try:
            outcomes, fell_back = _execute(self._op, [item.x for item in batch])
        except BaseException as exc:  # never leave a request waiting forever
            outcomes, fell_back = [exc] * len(batch), False
        seconds = perf_counter() - started
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(self._done, batch, outcomes, fell_back, seconds)

    def _done(
        self, batch: list[_Item], outcomes: list[_Outcome], fell_back: bool, seconds: float
    ) -> None:
        self._in_flight -= 1
        self._observe(seconds)
        self._finish(batch, outcomes, fell_back)
        self._pump()

    def _observe(self, seconds: float) -> None:
        """Fold one merged call's duration into the moving average."""
        cost = self._cost
        self._cost = seconds if cost is None else 0.8 * cost + 0.2 * seconds

    @property
    def runs_inline(self) -> bool:
        """Whether the next merged call runs on the event loop."""
        return self._options.inline or (self._cost is not None and self._cost < self._inline_below)

    def _finish(self, batch: list[_Item], outcomes: list[_Outcome], fell_back: bool) -> None:
        if fell_back:
            self._stats.fallbacks += len(batch)
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.future.done():
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)


def _execute(op: RowOp, xs: list[np.ndarray]) -> tuple[list[_Outcome], bool]:
    """Each request's result rows (or error); True when the merged call failed."""
    if len(xs) == 1:
        return [_run_one(op, xs[0])], False
    merged = np.concatenate(xs)
    try:
        result = op(merged)
        if result.ndim == 0 or len(result) != len(merged):
            raise ValueError("not one result row per input row")
    except Exception:
        return [_run_one(op, x) for x in xs], True
    outcomes: list[_Outcome] = []
    start = 0
    for x in xs:
        outcomes.append(result[start : start + len(x)])
        start += len(x)
    return outcomes, False


def _run_one(op: RowOp, x: np.ndarray) -> _Outcome:
    try:
        return op(x)
    except Exception as exc:
        return exc
