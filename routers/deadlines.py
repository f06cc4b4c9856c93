"""Cancelling requests that run past their deadline, with one timer for all of them.

`asyncio.timeout` per request costs a timer handle, a heap push and a reschedule on
every request; here a request costs a dict insert and delete, and a single sweep every
`TICK` seconds (only while requests are in flight) cancels the tasks whose deadline
passed. A deadline therefore fires up to `TICK` late, which no caller can tell apart
from network jitter.
"""

from __future__ import annotations

import asyncio

from routers.request_record import RequestRecord

TICK = 0.05


class DeadlineSweeper:
    """Tasks being watched: their deadline in `loop.time()` seconds, and their record.

    A task whose response has started (`RequestRecord.status` set) is never cancelled:
    a started response is the app's to finish.
    """

    def __init__(self) -> None:
        self._watched: dict[asyncio.Task[object], tuple[float, RequestRecord]] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, task: asyncio.Task[object], deadline: float, record: RequestRecord) -> None:
        """Cancel `task` once `loop.time()` passes `deadline`, unless its response started."""
        self._watched[task] = (deadline, record)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(TICK, self._sweep)

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
        late = [task for task, (deadline, _) in self._watched.items() if deadline <= now]
        for task in late:
            _, record = self._watched.pop(task)
            if not record.status:
                self._expired.add(task)
                task.cancel()
        self._timer = loop.call_later(TICK, self._sweep) if self._watched else None
