"""The gateway's HTTP metrics and the Prometheus `GET /metrics` endpoint.

Label values are bounded: `model` is a configured model name, `_unknown` for any other
name a caller sent, or empty outside /v1/models/NAME; `version` and `signature` are set
only when the request succeeded (so they name a served version and a real signature);
`verb` and `code` come from small fixed sets. As a last guard, beyond
`MAX_LABEL_SETS` distinct label sets new ones are folded into `_overflow`.

One process (the default): plain counters updated on the event loop, turned into
samples when scraped; prometheus_client's locked metric objects cost several times
more per request. With PROMETHEUS_MULTIPROC_DIR set (`--workers` > 1) the same metrics
are prometheus_client objects in multiprocess mode, and a scrape merges every worker.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterator, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

import clients.metrics  # noqa: F401  (registers the backends' model load metrics)
from routers.health import as_get
from routers.request_record import RequestRecord

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_LABEL_SETS = 5000
OVERFLOW = "_overflow"
SHED_REASONS = ("per_model", "global")

REQUEST_LABELS = ("model", "version", "signature", "verb")
HELP = {
    "requests": "HTTP requests answered, by model, version, signature, verb and HTTP status code",
    "errors": "HTTP requests answered with a 4xx or 5xx status, by model, verb and status code",
    "latency": "Time from request to the end of the response, by model, version, signature, verb",
    "backend": "Time spent in backend calls (TF Serving over gRPC, or the scikit-learn model)",
    "in_flight": "HTTP requests being answered",
    "shed": "Requests turned away for load: per_model (429: the model's concurrency limit or "
    "the backend's RESOURCE_EXHAUSTED) or global (503 before the request reached a model)",
}
_Labels = tuple[str, str, str, str]
_LE = {bound: floatToGoString(bound) for bound in (*BUCKETS, float("inf"))}  # type: ignore[no-untyped-call]


def _bounded(labels: _Labels, seen: Mapping[_Labels, object]) -> _Labels:
    """`labels`, or its `_overflow` form once there are too many label sets."""
    if labels in seen or len(seen) < MAX_LABEL_SETS or not (labels[1] or labels[2]):
        return labels
    return (labels[0], OVERFLOW, OVERFLOW, labels[3])


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def add_to(self, family: HistogramMetricFamily, labels: tuple[str, ...]) -> None:
        cumulative, buckets = 0, []
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append((_LE[bound], float(cumulative)))
        family.add_metric(list(labels), buckets, self.total)


class LocalMetrics:
    """The metrics of this process, updated without locks (only on the event loop)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.requests: dict[tuple[_Labels, int], int] = {}
        self.errors: dict[tuple[str, str, int], int] = {}
        self.latency: dict[_Labels, _Histogram] = {}
        self.backend: dict[tuple[str, str], _Histogram] = {}
        self.shed = dict.fromkeys(SHED_REASONS, 0)

    def started(self) -> None:
        """A request came in."""
        self.in_flight += 1

    def finished(self, record: RequestRecord, status: int, seconds: float) -> None:
        """A request was answered with `status` after `seconds`."""
        self.in_flight -= 1
        labels = (record.model, record.version, record.signature, record.verb or "other")
        latency = self.latency.get(labels)
        if latency is None:
            labels = _bounded(labels, self.latency)
            latency = self.latency.setdefault(labels, _Histogram())
        latency.observe(seconds)
        key = (labels, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if status >= 400:
            error = (labels[0], labels[3], status)
            self.errors[error] = self.errors.get(error, 0) + 1
        if record.backend:
            backend = self.backend.get((labels[0], labels[3]))
            if backend is None:
                backend = self.backend.setdefault((labels[0], labels[3]), _Histogram())
            backend.observe(record.backend)

    def count_shed(self, reason: str) -> None:
        """A request was turned away for load (`per_model` or `global`)."""
        self.shed[reason] += 1

    def describe(self) -> list[Metric]:
        """The metric names, for the registry (without reading any values)."""
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        """The current samples."""
        requests, errors, latency, backend, in_flight, shed = self._families()
        for (labels, status), count in list(self.requests.items()):
            requests.add_metric([*labels, str(status)], count)
        for (model, verb, status), count in list(self.errors.items()):
            errors.add_metric([model, verb, str(status)], count)
        for labels, histogram in list(self.latency.items()):
            histogram.add_to(latency, labels)
        for pair, histogram in list(self.backend.items()):
            histogram.add_to(backend, pair)
        in_flight.add_metric([], self.in_flight)
        for reason, count in self.shed.items():
            shed.add_metric([reason], count)
        yield from (requests, errors, latency, backend, in_flight, shed)

    def _families(
        self,
    ) -> tuple[
        CounterMetricFamily,
        CounterMetricFamily,
        HistogramMetricFamily,
        HistogramMetricFamily,
        GaugeMetricFamily,
        CounterMetricFamily,
    ]:
        return (
            CounterMetricFamily(
                "gateway_requests", HELP["requests"], labels=[*REQUEST_LABELS, "code"]
            ),
            CounterMetricFamily(
                "gateway_request_errors", HELP["errors"], labels=["model", "verb", "code"]
            ),
            HistogramMetricFamily(
                "gateway_request_duration_seconds", HELP["latency"], labels=REQUEST_LABELS
            ),
            HistogramMetricFamily(
                "gateway_backend_duration_seconds", HELP["backend"], labels=["model", "verb"]
            ),
            GaugeMetricFamily("gateway_requests_in_flight", HELP["in_flight"], labels=[]),
            CounterMetricFamily("gateway_shed_requests", HELP["shed"], labels=["reason"]),
        )


class SharedMetrics:
    """The same metrics as prometheus_client objects, for multiprocess mode."""

    def __init__(self) -> None:
        self.requests = Counter(
            "gateway_requests", HELP["requests"], [*REQUEST_LABELS, "code"], registry=None
        )
        self.errors = Counter(
            "gateway_request_errors", HELP["errors"], ["model", "verb", "code"], registry=None
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            HELP["latency"],
            REQUEST_LABELS,
            buckets=BUCKETS,
            registry=None,
        )
        self.backend = Histogram(
            "gateway_backend_duration_seconds",
            HELP["backend"],
            ["model", "verb"],
            buckets=BUCKETS,
            registry=None,
        )
        self.in_flight = Gauge(
            "gateway_requests_in_flight",
            HELP["in_flight"],
            multiprocess_mode="livesum",
            registry=None,
        )
        self.shed = Counter("gateway_shed_requests", HELP["shed"], ["reason"], registry=None)
        self._seen: dict[_Labels, object] = {}

    def started(self) -> None:
        """A request came in."""
        self.in_flight.inc()

    def finished(self, record: RequestRecord, status: int, seconds: float) -> None:
        """A request was answered with `status` after `seconds`."""
        self.in_flight.dec()
        labels = _bounded(
            (record.model, record.version, record.signature, record.verb or "other"), self._seen
        )
        self._seen.setdefault(labels, None)
        self.latency.labels(*labels).observe(seconds)
        self.requests.labels(*labels, str(status)).inc()
        if status >= 400:
            self.errors.labels(labels[0], labels[3], str(status)).inc()
        if record.backend:
            self.backend.labels(labels[0], labels[3]).observe(record.backend)

    def count_shed(self, reason: str) -> None:
        """A request was turned away for load (`per_model` or `global`)."""
        self.shed.labels(reason).inc()


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


METRICS: LocalMetrics | SharedMetrics = SharedMetrics() if _multiprocess() else LocalMetrics()
if isinstance(METRICS, LocalMetrics):
    REGISTRY.register(METRICS)


def registry() -> CollectorRegistry:
    """The registry to expose: every worker's metrics when PROMETHEUS_MULTIPROC_DIR is set."""
    if _multiprocess():
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return merged
    return REGISTRY


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
@router.head("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the gateway's metrics (HEAD: without the body)."""
    return as_get(request, Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST))
