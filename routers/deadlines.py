"""Cancelling requests that run past their deadline, with one timer for all of them.

`asyncio.timeout` per request costs a timer handle, a heap push and a reschedule on
every request; here a request costs a dict insert and delete, and a single sweep every
`TICK` seconds (only while requests are in flight) cancels the tasks whose deadline
passed. A deadline therefore fires up to `TICK` late, which no caller can tell apart
from network jitter.
"""

from __future__ import annotations

import asyncio

TICK = 0.05


class DeadlineSweeper:
    """Tasks being watched, by their deadline in `loop.time()` seconds."""

    def __init__(self) -> None:
        self._watched: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, task: asyncio.Task[object], deadline: float) -> None:
        """Cancel `task` once `loop.time()` passes `deadline`, unless released first."""
        self._watched[task] = deadline
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(TICK, self._sweep)

    def release(self, task: asyncio.Task[object]) -> None:
        """Stop watching `task` (its response has started, or it is over)."""
        self._watched.pop(task, None)

    def forget(self, task: asyncio.Task[object]) -> None:
        """The request is over: stop watching, and undo a cancellation nobody consumed."""
        self._watched.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()

    def expired(self, task: asyncio.Task[object]) -> bool:
        """Whether the sweeper cancelled `task`; forgets it and undoes that cancellation.

        Returns False when the task was (also) cancelled by someone else, whose
        cancellation must go on.
        """
        if task not in self._expired:
            return False
        self._expired.discard(task)
        return task.uncancel() == 0

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        late = [task for task, deadline in self._watched.items() if deadline <= now]
        for task in late:
            del self._watched[task]
            self._expired.add(task)
            task.cancel()
        self._timer = loop.call_later(TICK, self._sweep) if self._watched else None
