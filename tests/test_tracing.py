"""OpenTelemetry tracing, end to end: real gateway processes, a real OTLP receiver.

`gateway serve` runs as a child process configured only by OTEL_* variables; it exports
over OTLP/gRPC to `OtlpReceiver`, a real OTLP trace service (the collector's protocol)
on a loopback port in this process. Its TF models are served by the
TF-Serving-compatible backend process behind `GrpcProxy` (tests/grpc_proxy.py), a real
gRPC server that records each call's metadata: what TF Serving would receive. Nothing
the gateway integrates with is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from clients.embedded import EmbeddedTfServing, free_port
from gateway import tracing
from tests.conftest import GatewayProcess, spawn_gateway, wait_until_ready
from tests.grpc_proxy import GrpcProxy

TF_PREDICT = "/v1/models/half_plus_two:predict"
SK_PREDICT = "/v1/models/iris:predict"
TF_BODY = {"instances": [1.0, 2.0]}
SK_BODY = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
SERVICE = "gateway-under-test"


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP/gRPC trace receiver on a loopback port; keeps every span it is sent,
    with its resource's `service.name`. Threaded, so it answers while the test blocks."""

    def __init__(self) -> None:
        self.port = free_port()
        self.spans: list[tuple[str, Span]] = []
        self._lock = threading.Lock()
        self._server = grpc.server(ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")

    def Export(  # noqa: N802 (the OTLP service's method name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        """Keep the spans of one export."""
        with self._lock:
            for resource_spans in request.resource_spans:
                service = _attributes(resource_spans.resource.attributes).get("service.name", "")
                for scope_spans in resource_spans.scope_spans:
                    self.spans += [(str(service), span) for span in scope_spans.spans]
        return trace_service_pb2.ExportTraceServiceResponse()

    def start(self) -> None:
        """Start listening."""
        self._server.start()

    def stop(self) -> None:
        """Stop listening."""
        self._server.stop(None)

    def of_trace(self, trace_id: str) -> list[Span]:
        """The spans received so far of the trace `trace_id` (hex)."""
        with self._lock:
            return [span for _, span in self.spans if span.trace_id.hex() == trace_id]

    def services(self) -> set[str]:
        """The `service.name` of every span received so far."""
        with self._lock:
            return {service for service, _ in self.spans}


def _attributes(pairs: Any) -> dict[str, str | int]:
    """OTLP attributes as a dict (the string and int values tests look at)."""
    values: dict[str, str | int] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        kind = pair.value.WhichOneof("value")
        values[pair.key] = pair.value.int_value if kind == "int_value" else pair.value.string_value
    return values


async def _wait_for(
    found: Callable[[], list[Span]], enough: Callable[[list[Span]], bool], within: float = 15
) -> list[Span]:
    """Poll `found()` until `enough` of it has arrived (the exporter batches)."""
    deadline = time.monotonic() + within
    spans = found()
    while not enough(spans) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        spans = found()
    return spans


def _new_traceparent() -> tuple[str, str, str]:
    """A caller's `traceparent` (sampled), its trace id and its span id."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    """The OTLP receiver both gateways are pointed at."""
    otlp = OtlpReceiver()
    otlp.start()
    yield otlp
    otlp.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def proxy(compat_backend: EmbeddedTfServing) -> AsyncIterator[GrpcProxy]:
    """The recording gRPC proxy in front of the TF-Serving-compatible backend."""
    recording = GrpcProxy(compat_backend.target)
    await recording.start()
    yield recording
    await recording.stop()


@contextlib.asynccontextmanager
async def _gateway(
    workdir: Path,
    proxy: GrpcProxy,
    tf_models: Path,
    sklearn_models: Path,
    receiver: OtlpReceiver,
    traces_exporter: str | None,
) -> AsyncIterator[GatewayProcess]:
    """A ready `gateway serve` with half_plus_two (TF, through `proxy`) and iris
    (scikit-learn), with the OTLP endpoint set to `receiver` and OTEL_TRACES_EXPORTER
    set to `traces_exporter` (None: unset)."""
    config = {
        "tf_serving_target": proxy.target,
        "models": [
            {"name": "half_plus_two", "platform": "tensorflow", "base_path": str(tf_models)},
            {"name": "iris", "platform": "sklearn", "base_path": str(sklearn_models)},
        ],
    }
    with pytest.MonkeyPatch.context() as env:  # spawn_gateway passes os.environ on
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
        env.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        env.setenv("OTEL_SERVICE_NAME", SERVICE if traces_exporter else "untraced-gateway")
        env.delenv("OTEL_SDK_DISABLED", raising=False)
        if traces_exporter is None:
            env.delenv("OTEL_TRACES_EXPORTER", raising=False)
        else:
            env.setenv("OTEL_TRACES_EXPORTER", traces_exporter)
        spawned = spawn_gateway(config, workdir)
        gateway = spawned.__enter__()
    try:
        await asyncio.to_thread(wait_until_ready, gateway.url, gateway.process, gateway.log)
        yield gateway
    finally:
        await asyncio.to_thread(spawned.__exit__, None, None, None)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def traced(
    tmp_path_factory: pytest.TempPathFactory,
    proxy: GrpcProxy,
    tf_test_models: Path,
    sklearn_models_dir: Path,
    receiver: OtlpReceiver,
) -> AsyncIterator[GatewayProcess]:
    """The gateway with OTEL_TRACES_EXPORTER=otlp."""
    async with _gateway(
        tmp_path_factory.mktemp("traced"),
        proxy,
        tf_test_models / "half_plus_two",
        sklearn_models_dir / "iris",
        receiver,
        "otlp",
    ) as gateway:
        yield gateway


async def _post(
    gateway: GatewayProcess, path: str, body: object, headers: dict[str, str]
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        return await http.post(path, json=body, headers=headers)


def _server_span(spans: list[Span]) -> Span:
    servers = [span for span in spans if span.kind == Span.SPAN_KIND_SERVER]
    assert len(servers) == 1, spans
    return servers[0]


def _children(spans: list[Span], parent: Span) -> dict[str, Span]:
    return {span.name: span for span in spans if span.parent_span_id == parent.span_id}


def _complete(spans: list[Span], phases: int = 3) -> bool:
    servers = [span for span in spans if span.kind == Span.SPAN_KIND_SERVER]
    return len(servers) == 1 and len(_children(spans, servers[0])) >= phases


async def test_tf_predict_is_a_child_of_the_callers_span_and_the_parent_of_tf_serving(
    traced: GatewayProcess, receiver: OtlpReceiver, proxy: GrpcProxy
) -> None:
    traceparent, trace_id, caller_span = _new_traceparent()
    request_id = f"traced-{uuid.uuid4().hex}"
    headers = {
        "traceparent": traceparent,
        "tracestate": "vendor=opaque",
        "X-Request-ID": request_id,
    }
    response = await _post(traced, TF_PREDICT, TF_BODY, headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [2.5, 3.0]}

    spans = await _wait_for(lambda: receiver.of_trace(trace_id), _complete)
    server = _server_span(spans)
    assert server.parent_span_id.hex() == caller_span
    assert server.name == "POST /v1/models/{model_name}:predict"
    assert server.trace_state == "vendor=opaque"
    assert server.status.code == Status.STATUS_CODE_UNSET
    attributes = _attributes(server.attributes)
    assert attributes["http.request.method"] == "POST"
    assert attributes["url.path"] == TF_PREDICT
    assert attributes["url.scheme"] == "http"
    assert attributes["http.route"] == "/v1/models/{model_name}:predict"
    assert attributes["http.response.status_code"] == 200
    assert attributes["gateway.model.name"] == "half_plus_two"
    assert attributes["gateway.model.version"] == "123"
    assert attributes["gateway.model.signature"] == "serving_default"
    assert attributes["gateway.request_id"] == request_id

    phases = _children(spans, server)
    assert set(phases) == {"parse", "backend", "render"}
    parse, backend, render = phases["parse"], phases["backend"], phases["render"]
    assert server.start_time_unix_nano <= parse.start_time_unix_nano
    assert parse.end_time_unix_nano == backend.start_time_unix_nano
    assert backend.end_time_unix_nano == render.start_time_unix_nano
    assert render.end_time_unix_nano <= server.end_time_unix_nano

    # What TF Serving received: the backend span as the parent, the caller's tracestate.
    calls = [metadata for _, metadata in proxy.calls if metadata.get("x-request-id") == request_id]
    assert calls, proxy.calls
    for metadata in calls:
        assert metadata["traceparent"] == f"00-{trace_id}-{backend.span_id.hex()}-01"
        assert metadata["tracestate"] == "vendor=opaque"
    # The replica monitor's own polls belong to no request, so to no trace.
    assert not [m for _, m in proxy.calls if "x-request-id" not in m and "traceparent" in m]


async def test_a_request_without_traceparent_starts_a_trace(
    traced: GatewayProcess, receiver: OtlpReceiver, proxy: GrpcProxy
) -> None:
    request_id = f"root-{uuid.uuid4().hex}"
    response = await _post(traced, TF_PREDICT, TF_BODY, {"X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    metadata = next(m for _, m in proxy.calls if m.get("x-request-id") == request_id)
    _, trace_id, backend_id, _ = metadata["traceparent"].split("-")

    spans = await _wait_for(lambda: receiver.of_trace(trace_id), _complete)
    server = _server_span(spans)
    assert server.parent_span_id == b""
    assert _children(spans, server)["backend"].span_id.hex() == backend_id


async def test_sklearn_requests_get_the_same_spans(
    traced: GatewayProcess, receiver: OtlpReceiver
) -> None:
    traceparent, trace_id, caller_span = _new_traceparent()
    response = await _post(traced, SK_PREDICT, SK_BODY, {"traceparent": traceparent})
    assert response.status_code == 200, response.text

    spans = await _wait_for(lambda: receiver.of_trace(trace_id), _complete)
    server = _server_span(spans)
    assert server.parent_span_id.hex() == caller_span
    attributes = _attributes(server.attributes)
    assert attributes["gateway.model.name"] == "iris"
    assert attributes["http.route"] == "/v1/models/{model_name}:predict"
    assert set(_children(spans, server)) == {"parse", "backend", "render"}
    assert {service for service in receiver.services()} == {SERVICE}


async def test_a_5xx_is_an_error_and_a_4xx_is_not(
    traced: GatewayProcess, receiver: OtlpReceiver
) -> None:
    late, late_trace, _ = _new_traceparent()
    headers = {"traceparent": late, "X-Request-Timeout": "0.000001"}
    assert (await _post(traced, TF_PREDICT, TF_BODY, headers)).status_code == 504
    unknown, unknown_trace, _ = _new_traceparent()
    missing = "/v1/models/nonexistent/versions/7:predict"
    assert (await _post(traced, missing, TF_BODY, {"traceparent": unknown})).status_code == 404

    spans = await _wait_for(lambda: receiver.of_trace(late_trace), lambda s: len(s) >= 1)
    server = _server_span(spans)
    assert server.status.code == Status.STATUS_CODE_ERROR
    assert _attributes(server.attributes)["error.type"] == "504"
    assert _attributes(server.attributes)["http.response.status_code"] == 504

    spans = await _wait_for(lambda: receiver.of_trace(unknown_trace), lambda s: len(s) >= 1)
    server = _server_span(spans)
    assert server.status.code == Status.STATUS_CODE_UNSET
    attributes = _attributes(server.attributes)
    assert attributes["http.response.status_code"] == 404
    assert attributes["http.route"] == "/v1/models/{model_name}/versions/{version}:predict"
    assert "error.type" not in attributes


async def test_other_routes_name_their_route(
    traced: GatewayProcess, receiver: OtlpReceiver
) -> None:
    traceparent, trace_id, _ = _new_traceparent()
    async with httpx.AsyncClient(base_url=traced.url) as http:
        assert (await http.get("/healthz", headers={"traceparent": traceparent})).is_success
    spans = await _wait_for(lambda: receiver.of_trace(trace_id), lambda s: len(s) >= 1)
    server = _server_span(spans)
    assert server.name == "GET /healthz"
    assert _attributes(server.attributes)["http.route"] == "/healthz"
    assert _children(spans, server) == {}  # no phases outside /v1/


async def test_with_tracing_off_no_spans_and_no_trace_metadata(
    tmp_path: Path,
    proxy: GrpcProxy,
    tf_test_models: Path,
    sklearn_models_dir: Path,
    receiver: OtlpReceiver,
) -> None:
    async with _gateway(
        tmp_path,
        proxy,
        tf_test_models / "half_plus_two",
        sklearn_models_dir / "iris",
        receiver,
        None,  # the OTLP endpoint is set, but no exporter is asked for
    ) as gateway:
        traceparent, trace_id, _ = _new_traceparent()
        request_id = f"untraced-{uuid.uuid4().hex}"
        headers = {"traceparent": traceparent, "X-Request-ID": request_id}
        for path, body in ((TF_PREDICT, TF_BODY), (SK_PREDICT, SK_BODY)):
            response = await _post(gateway, path, body, headers)
            assert response.status_code == 200, response.text
        await asyncio.sleep(0.5)  # ten times the export delay the traced gateway has
    calls = [metadata for _, metadata in proxy.calls if metadata.get("x-request-id") == request_id]
    assert calls
    assert not [metadata for metadata in calls if "traceparent" in metadata]
    assert receiver.of_trace(trace_id) == []
    assert "untraced-gateway" not in receiver.services()


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp_proto_grpc"]),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp,console",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            ["otlp_proto_http", "console"],
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
            },
            ["otlp_proto_grpc"],
        ),
    ],
)
def test_what_turns_tracing_on(environ: dict[str, str], names: list[str]) -> None:
    assert tracing.exporter_names(environ) == names


def test_a_misconfigured_exporter_fails_at_start_up() -> None:
    with pytest.raises(ValueError, match="not an OTLP protocol"):
        tracing.exporter_names({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "x"})
    with pytest.raises(ValueError, match="no span exporter 'zipkin'"):
        tracing.configure({"OTEL_TRACES_EXPORTER": "zipkin"})
    assert tracing.request_tracing() is None  # nothing was installed
