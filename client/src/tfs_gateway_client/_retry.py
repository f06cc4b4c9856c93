"""When to try a request again: bounded retries on 429 and 503 that honour `Retry-After`.

The gateway answers 429 (a model has too many requests in flight) and 503 (the gateway is
overloaded, or TF Serving is unreachable) with `Retry-After: 1` before doing any of the
work, so repeating the request is safe and is what the server asks for.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of answers whose status is in `statuses`.

    - At most `max_retries` retries after the first attempt (0: never retry).
    - With `Retry-After` the client waits exactly that long (never less). A `Retry-After`
      longer than `max_wait` is not waited for: the error is raised at once.
    - Without it, it waits `backoff * 2**(n-1)` seconds before retry n, capped at
      `max_wait`, times a random factor in [0.5, 1] so that callers spread out.
    - Never past the call's deadline: a wait that would end after it raises the error.
    """

    max_retries: int = 3
    max_wait: float = 30.0
    backoff: float = 0.25
    statuses: frozenset[int] = frozenset({429, 503})

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {self.max_retries}")
        if not (self.max_wait >= 0 and self.backoff >= 0):
            raise ValueError("max_wait and backoff must be >= 0")

    def wait_before_retry(
        self, retry: int, status: int, retry_after: float | None, time_left: float | None
    ) -> float | None:
        """Seconds to wait before retry number `retry` (1 for the first), or None to give
        up, after an answer with `status` and `Retry-After` (seconds, or None) when
        `time_left` seconds (None: no deadline) remain."""
        if retry > self.max_retries or status not in self.statuses:
            return None
        if retry_after is None:
            wait = min(self.backoff * 2.0 ** (retry - 1), self.max_wait) * random.uniform(0.5, 1)
        elif retry_after > self.max_wait:
            return None
        else:
            wait = retry_after
        if time_left is not None and wait >= time_left:
            return None
        return wait


NO_RETRIES = RetryPolicy(max_retries=0)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` in seconds from `now` (time.time()): delay-seconds or an HTTP-date;
    None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
