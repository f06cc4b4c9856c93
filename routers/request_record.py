"""What one request was about and where its time went, filled in by the /v1 router.

`ObservabilityMiddleware` puts a fresh `RequestRecord` in the ASGI scope under
`RECORD_KEY` and sets its `status` when the response starts; `routers.tfserving_v1` sets
the labels (only values that are bounded by configuration: a configured model name, a
served version, a known signature) and laps the phases with `time.perf_counter`. The
middleware turns it into metrics, the access log line and the `Server-Timing` header;
the edge reads `status` to leave a started response alone at the deadline.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from time import perf_counter
from typing import Any

from clients.context import CALL_CONTEXT

RECORD_KEY = "gateway.request"
UNKNOWN_MODEL = "_unknown"


class RequestRecord:
    """Labels and phase durations (seconds) of one request."""

    __slots__ = (
        "_mark",
        "backend",
        "model",
        "parse",
        "render",
        "signature",
        "status",
        "verb",
        "version",
    )

    def __init__(self) -> None:
        self.status = 0  # the response's status once it has started; 0 before
        self.model = ""
        self.version = ""
        self.signature = ""
        self.verb = ""
        self.parse = 0.0
        self.backend = 0.0
        self.render = 0.0
        self._mark = 0.0

    def start(self) -> None:
        """Start the clock of the first phase."""
        self._mark = perf_counter()

    def parsed(self) -> None:
        """The time since the last lap went into parsing and decoding the request."""
        now = perf_counter()
        self.parse += now - self._mark
        self._mark = now

    def called(self) -> None:
        """The time since the last lap went into the backend (the data plane call)."""
        now = perf_counter()
        self.backend += now - self._mark
        self._mark = now

    def rendered(self) -> None:
        """The time since the last lap went into encoding the response."""
        now = perf_counter()
        self.render += now - self._mark
        self._mark = now

    def succeeded(self, version: str, signature: str) -> None:
        """Label the request with the version and signature that answered it."""
        self.version = version
        self.signature = signature

    def server_timing(self) -> bytes:
        """The `Server-Timing` header value, durations in milliseconds; then the backend's
        own named durations (`clients.context.add_timing`, e.g. a pipeline's steps)."""
        value = b"parse;dur=%.3f, backend;dur=%.3f, render;dur=%.3f" % (
            self.parse * 1e3,
            self.backend * 1e3,
            self.render * 1e3,
        )
        for name, seconds in CALL_CONTEXT.get().timings or ():
            value += b", %s;dur=%.3f" % (name.encode(), seconds * 1e3)
        return value


def record_of(scope: MutableMapping[str, Any]) -> RequestRecord:
    """The request's record (a throwaway one when the middleware is not installed)."""
    record = scope.get(RECORD_KEY)
    return record if isinstance(record, RequestRecord) else RequestRecord()
