"""OpenTelemetry tracing: off unless `OTEL_TRACES_EXPORTER` names an exporter.

`configure()` runs once in every serving process, before the app is built. When
`OTEL_TRACES_EXPORTER` is unset or `none`, or `OTEL_SDK_DISABLED=true`, it installs
nothing and `request_tracer()` stays None: the middleware then creates no span and the
TF backend sends no trace context. Otherwise the SDK's `TracerProvider` is installed
with a `BatchSpanProcessor` per named exporter; everything else is the SDK's own
environment handling (`OTEL_SERVICE_NAME`/`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`
and its argument, `OTEL_BSP_*`, the exporter's `OTEL_EXPORTER_OTLP_*`; `OTEL_PROPAGATORS`
is read by `opentelemetry.propagate`).

`RequestSpans` is one request's spans: a SERVER span started when the request arrives, a
child of the caller's context (`traceparent`, `tracestate`), and its phases (parse,
backend, render) as children, made when it ends from the measured durations. The
backend span's id is drawn when the request starts and its context is the current one
while the request runs, so the trace context a backend call sends (see
`clients.tf_serving`) names the backend span as the parent. The phases' spans are
finished spans (`ReadableSpan`) handed straight to the span processors: they follow the
server span's sampling decision, and cost a sixth of a span started and ended through
the tracer (measured: 3 against 20 µs each).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from time import time_ns

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_SDK_DISABLED,
)
from opentelemetry.sdk.trace import ReadableSpan, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

INSTRUMENTATION_SCOPE = "tfs-gateway"
_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}

_IDS = RandomIdGenerator()


@dataclass(frozen=True)
class Tracing:
    """The installed tracer, and the span processors behind it (for the phases' spans)."""

    tracer: trace.Tracer
    processor: SynchronousMultiSpanProcessor


_tracing: Tracing | None = None


def exporter_names(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The exporters `OTEL_TRACES_EXPORTER` names (entry point names); [] means off.

    Unset, empty or `none` is off (the OTel default would be `otlp`: this gateway traces
    only when asked to), and so is `OTEL_SDK_DISABLED=true`. `otlp` is the OTLP exporter
    for `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`/`OTEL_EXPORTER_OTLP_PROTOCOL` (default grpc;
    ValueError for any other than grpc and http/protobuf).
    """
    if environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true":
        return []
    names = [name.strip() for name in environ.get(OTEL_TRACES_EXPORTER, "").split(",")]
    names = [name for name in names if name and name.lower() != "none"]
    if "otlp" not in names:
        return names
    protocol = (
        environ.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
        or environ.get(OTEL_EXPORTER_OTLP_PROTOCOL)
        or "grpc"
    ).strip()
    if protocol not in _OTLP_BY_PROTOCOL:
        raise ValueError(f"{OTEL_EXPORTER_OTLP_PROTOCOL}: {protocol!r} is not an OTLP protocol")
    return [_OTLP_BY_PROTOCOL[protocol] if name == "otlp" else name for name in names]


def configure(environ: Mapping[str, str] = os.environ) -> Tracing | None:
    """Install the SDK's tracer provider if `environ` turns tracing on (None: off).

    Raises ValueError naming an exporter that is not installed, so a misconfigured
    gateway fails at start-up rather than dropping every span.
    """
    global _tracing
    names = exporter_names(environ)
    if not names:
        return None
    exporters = [_exporter(name) for name in names]
    processor = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
    for exporter in exporters:
        processor.add_span_processor(BatchSpanProcessor(exporter))
    # The sampler and the resource come from the environment.
    provider = TracerProvider(active_span_processor=processor)
    trace.set_tracer_provider(provider)
    _tracing = Tracing(provider.get_tracer(INSTRUMENTATION_SCOPE), processor)
    return _tracing


def request_tracing() -> Tracing | None:
    """What `configure` installed; None while tracing is off."""
    return _tracing


def _exporter(name: str) -> SpanExporter:
    """A new exporter of the entry point `name` (configured by its own OTEL_* variables)."""
    found = list(entry_points(group=_EXPORTER_GROUP, name=name))
    if not found:
        known = sorted(point.name for point in entry_points(group=_EXPORTER_GROUP))
        raise ValueError(f"{OTEL_TRACES_EXPORTER}: no span exporter {name!r} (installed: {known})")
    exporter = found[0].load()()
    if not isinstance(exporter, SpanExporter):
        raise ValueError(f"{OTEL_TRACES_EXPORTER}: {name!r} is not a span exporter")
    return exporter


class RequestSpans:
    """One HTTP request's server span, current (via the backend span's id) until `finish`."""

    __slots__ = ("_backend_id", "_processor", "_token", "span")

    def __init__(
        self,
        tracing: Tracing,
        name: str,
        headers: Iterable[tuple[bytes, bytes]],
        attributes: Mapping[str, AttributeValue],
        start_ns: int,
    ) -> None:
        self._processor = tracing.processor
        parent = propagate.extract(_trace_headers(headers))
        self.span = tracing.tracer.start_span(
            name, parent, kind=SpanKind.SERVER, attributes=attributes, start_time=start_ns
        )
        current = trace.set_span_in_context(self.span, parent)
        self._backend_id = 0
        if self.span.is_recording():
            server = self.span.get_span_context()
            self._backend_id = _IDS.generate_span_id()
            backend = SpanContext(
                server.trace_id, self._backend_id, False, server.trace_flags, server.trace_state
            )
            current = trace.set_span_in_context(NonRecordingSpan(backend), current)
        self._token = otel_context.attach(current)

    def finish(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue],
        error_type: str | None,
        phases: tuple[float, float, float],
        phases_end_ns: int,
    ) -> None:
        """End the request's spans: rename the server span, set `attributes`, mark it an
        error if `error_type`, and add the parse, backend and render spans laid end to end
        (durations in seconds; a zero one is left out), the last ending at `phases_end_ns`.

        The phases' spans hold each phase's total time: a request that called the
        backend twice (a metadata miss, then predict) shows one backend span for both.
        """
        otel_context.detach(self._token)
        span = self.span
        if not isinstance(span, ReadableSpan):  # not recording (sampled out)
            span.end()
            return
        span.update_name(name)
        span.set_attributes(attributes)
        if error_type is not None:
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR))
        server = span.get_span_context()
        end = phases_end_ns
        parse, backend, render = phases
        for phase, seconds in (("render", render), ("backend", backend), ("parse", parse)):
            if seconds <= 0:
                continue
            start = end - int(seconds * 1e9)
            span_id = self._backend_id if phase == "backend" else _IDS.generate_span_id()
            context = SpanContext(
                server.trace_id, span_id, False, server.trace_flags, server.trace_state
            )
            finished = ReadableSpan(
                phase,
                context,
                parent=server,
                resource=span.resource,
                start_time=start,
                end_time=end,
                instrumentation_scope=span.instrumentation_scope,
            )
            self._processor.on_end(finished)
            end = start
        span.end(end_time=max(time_ns(), phases_end_ns))


def _trace_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers the configured propagators read (`traceparent`...), repeats joined."""
    fields = propagate.get_global_textmap().fields
    carrier: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1")
        if name in fields:
            value = raw_value.decode("latin-1")
            carrier[name] = f"{carrier[name]},{value}" if name in carrier else value
    return carrier
