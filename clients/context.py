"""Per-request facts every backend call needs but no method signature carries.

The HTTP layer sets `CALL_CONTEXT` once per request (a `contextvars.ContextVar`, so it
follows the request through awaits and tasks); backends read it to send the request id
to TF Serving as gRPC metadata and to give each gRPC call the time left in the
request's budget as its deadline. A backend that makes several calls for one request (a
pipeline) adds a named duration per call with `add_timing`; the HTTP layer shows them in
`Server-Timing`.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from clients.types import Code, ServingError


@dataclass(frozen=True)
class CallContext:
    """The request id and the absolute deadline (`time.monotonic()` seconds) of a request,
    and the named durations (seconds) its backend calls added (None: not recorded)."""

    request_id: str | None = None
    deadline: float | None = None
    timings: list[tuple[str, float]] | None = field(default_factory=list, compare=False)

    def remaining_seconds(self, default: float) -> float:
        """Seconds left before the deadline (`default` when there is none).

        Raises DEADLINE_EXCEEDED when the budget is already spent, so no backend call
        starts that could not finish in time.
        """
        if self.deadline is None:
            return default
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ServingError(Code.DEADLINE_EXCEEDED, "The request's deadline passed")
        return left


def add_timing(name: str, seconds: float) -> None:
    """Add a named duration to the current request's timings (`name`: a token, no spaces)."""
    timings = CALL_CONTEXT.get().timings
    if timings is not None:
        timings.append((name, seconds))


NO_CONTEXT = CallContext(timings=None)
CALL_CONTEXT: ContextVar[CallContext] = ContextVar("call_context", default=NO_CONTEXT)
