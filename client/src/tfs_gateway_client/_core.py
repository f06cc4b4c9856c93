"""Everything both clients do, without doing any I/O.

Each API call is described by a `Call` (method, path, JSON payload, how to read a 200).
`exchange` turns a call into a generator that yields the I/O steps, `Send` (an HTTP
request) and `Sleep` (a wait before a retry), and is sent back each `httpx.Response` (or
has the transport error thrown into it). It holds the deadline, the request id, the
headers, the retry policy and the error mapping; `sync.Client` and `aio.AsyncClient` only
drive it, one with blocking calls and one with `await`.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import numpy as np
from numpy.typing import NDArray

from . import _json, _types, _v2
from ._errors import (
    ConnectionFailed,
    DeadlineExceeded,
    GatewayError,
    UnexpectedResponse,
    error_for_status,
)
from ._retry import RetryPolicy, parse_retry_after
from ._version import __version__

T = TypeVar("T")

# How long past the deadline the client still waits for the server's own answer (its 504
# says more than a local timeout does).
DEADLINE_GRACE_SECONDS = 1.0
USER_AGENT = f"tfs-gateway-client/{__version__}"


@dataclass(frozen=True)
class Config:
    """A client's settings, shared by the sync and the async client."""

    base_url: str
    timeout: float | None
    retry: RetryPolicy
    headers: Mapping[str, str]

    @classmethod
    def build(
        cls,
        base_url: str,
        timeout: float | None,
        retry: RetryPolicy | None,
        api_key: str | None,
        headers: Mapping[str, str] | None,
    ) -> Config:
        """Check the arguments the clients take and fix the headers of every request."""
        if "://" not in base_url:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        _check_timeout(timeout)
        fixed = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key is not None:
            fixed["Authorization"] = f"Bearer {api_key}"
        fixed.update(headers or {})
        return cls(base_url.rstrip("/"), timeout, retry or RetryPolicy(), fixed)


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: `payload` is the JSON body (None for a GET); `parse` reads a 200."""

    method: str
    path: str
    payload: object
    parse: Callable[[Any], T]


@dataclass(frozen=True)
class Send:
    """Send this request; `timeout` (seconds, None: none) bounds each network step."""

    method: str
    url: str
    content: bytes | None
    headers: dict[str, str]
    timeout: float | None


@dataclass(frozen=True)
class Sleep:
    """Wait this many seconds, then go on (`send(None)`)."""

    seconds: float


Exchange = Generator[Send | Sleep, httpx.Response | None, T]


def model_path(
    model: str, verb: str, *, version: int | None = None, label: str | None = None
) -> str:
    """`/v1/models/NAME[/versions/N | /labels/L]` followed by `verb` (`:predict`,
    `/metadata`, or "" for the status), with the name and label percent-encoded."""
    if not isinstance(model, str) or not model:
        raise ValueError("model must be a non-empty string")
    path = f"/v1/models/{quote(model, safe='')}"
    if version is not None and label is not None:
        raise ValueError("give a version or a label, not both")
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError(f"version must be a non-negative integer, not {version!r}")
        path += f"/versions/{version}"
    elif label is not None:
        if not isinstance(label, str) or not label:
            raise ValueError("label must be a non-empty string")
        path += f"/labels/{quote(label, safe='')}"
    return path + verb


def _with_signature(payload: dict[str, Any], signature_name: str | None) -> dict[str, Any]:
    if signature_name is not None:
        payload = {"signature_name": signature_name, **payload}
    return payload


def predict_call(
    model: str,
    instances: _json.ArrayLike | Mapping[str, _json.ArrayLike],
    signature_name: str | None,
    version: int | None,
    label: str | None,
) -> Call[_json.Prediction]:
    """Row format: `{"instances": [...]}`, answered with `predictions`."""
    payload = _with_signature({"instances": _json.encode_instances(instances)}, signature_name)
    path = model_path(model, ":predict", version=version, label=label)
    return Call("POST", path, payload, _json.decode_predict)


def predict_columnar_call(
    model: str,
    inputs: _json.ArrayLike | Mapping[str, _json.ArrayLike],
    signature_name: str | None,
    version: int | None,
    label: str | None,
) -> Call[_json.Prediction]:
    """Columnar format: `{"inputs": ...}`, answered with `outputs`."""
    payload = _with_signature({"inputs": _json.encode_inputs(inputs)}, signature_name)
    path = model_path(model, ":predict", version=version, label=label)
    return Call("POST", path, payload, _json.decode_predict)


def _examples_payload(
    examples: Sequence[Mapping[str, _json.ArrayLike]],
    context: Mapping[str, _json.ArrayLike] | None,
    signature_name: str | None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"examples": _json.encode_examples(examples)}
    if context is not None:
        payload["context"] = {str(k): _json.encode_value(v) for k, v in context.items()}
    return _with_signature(payload, signature_name)


def classify_call(
    model: str,
    examples: Sequence[Mapping[str, _json.ArrayLike]],
    context: Mapping[str, _json.ArrayLike] | None,
    signature_name: str | None,
    version: int | None,
    label: str | None,
) -> Call[_types.Classification]:
    """`:classify` with `{"examples": [...], "context": {...}}`."""
    payload = _examples_payload(examples, context, signature_name)
    path = model_path(model, ":classify", version=version, label=label)
    return Call("POST", path, payload, _types.parse_classification)


def regress_call(
    model: str,
    examples: Sequence[Mapping[str, _json.ArrayLike]],
    context: Mapping[str, _json.ArrayLike] | None,
    signature_name: str | None,
    version: int | None,
    label: str | None,
) -> Call[NDArray[np.float64]]:
    """`:regress` with `{"examples": [...], "context": {...}}`."""
    payload = _examples_payload(examples, context, signature_name)
    path = model_path(model, ":regress", version=version, label=label)
    return Call("POST", path, payload, _types.parse_regression)


def status_call(model: str, version: int | None) -> Call[list[_types.ModelVersionStatus]]:
    """`GET /v1/models/NAME[/versions/N]`."""
    return Call("GET", model_path(model, "", version=version), None, _types.parse_status)


def metadata_call(model: str, version: int | None, label: str | None) -> Call[_types.ModelMetadata]:
    """`GET /v1/models/NAME[/versions/N | /labels/L]/metadata`."""
    path = model_path(model, "/metadata", version=version, label=label)
    return Call("GET", path, None, _types.parse_metadata)


def list_models_call() -> Call[list[str]]:
    """`GET /v1/models`, answered with `{"models": [...]}`."""
    return Call("GET", "/v1/models", None, _types.parse_model_list)


def infer_call(
    model: str,
    inputs: Mapping[str, _json.ArrayLike],
    outputs: Sequence[str] | None,
    parameters: Mapping[str, Any] | None,
    version: int | str | None,
) -> Call[dict[str, NDArray[Any]]]:
    """`POST /v2/models/NAME[/versions/V]/infer` (the Open Inference Protocol), JSON data."""
    payload = _v2.encode_request(inputs, outputs, parameters)
    return Call("POST", _v2.infer_path(model, version), payload, _v2.decode_response)


def new_request_id() -> str:
    """A fresh id in the form the gateway makes its own: 32 hex digits."""
    return uuid.uuid4().hex


def exchange(
    config: Config, call: Call[T], timeout: float | None, request_id: str | None
) -> Exchange[T]:
    """Run `call`: every attempt carries the request id and the time left (the deadline
    covers the retries); retryable answers are retried as `config.retry` says."""
    if timeout is None:
        timeout = config.timeout
    else:
        _check_timeout(timeout)
    rid = request_id or new_request_id()
    deadline = None if timeout is None else time.monotonic() + timeout
    content = None if call.payload is None else _json.dumps(call.payload)
    headers = {**config.headers, "X-Request-ID": rid}
    if content is not None:
        headers["Content-Type"] = "application/json"
    url = config.base_url + call.path
    retries = 0
    while True:
        time_left = None if deadline is None else deadline - time.monotonic()
        attempt_headers = dict(headers)
        if time_left is not None:
            if time_left <= 0:
                raise DeadlineExceeded(None, f"no answer within the deadline ({timeout} s)", rid)
            attempt_headers["X-Request-Timeout"] = f"{max(time_left, 0.001):.3f}"
        step_timeout = None if time_left is None else time_left + DEADLINE_GRACE_SECONDS
        try:
            response = yield Send(call.method, url, content, attempt_headers, step_timeout)
        except httpx.TimeoutException as error:
            message = f"no answer within the deadline ({timeout} s): {type(error).__name__}"
            raise DeadlineExceeded(None, message, rid) from error
        except httpx.TransportError as error:
            message = f"cannot reach {config.base_url}: {str(error) or type(error).__name__}"
            raise ConnectionFailed(None, message, rid) from error
        assert response is not None
        if 200 <= response.status_code < 300:
            try:
                return call.parse(_read_json(response, rid))
            except UnexpectedResponse as error:
                error.request_id = error.request_id or rid
                raise
        failure = error_from_response(response, rid)
        retries += 1
        time_left = None if deadline is None else deadline - time.monotonic()
        wait = config.retry.wait_before_retry(
            retries, response.status_code, failure.retry_after, time_left
        )
        if wait is None:
            raise failure
        yield Sleep(wait)


def _read_json(response: httpx.Response, request_id: str) -> Any:
    try:
        return _json.loads(response.content)
    except ValueError:
        raise UnexpectedResponse(
            response.status_code, f"the answer is not JSON: {response.text[:200]!r}", request_id
        ) from None


def error_from_response(response: httpx.Response, request_id: str) -> GatewayError:
    """The typed exception for an error answer: `{"error": msg}` gives msg; any other body
    its text (or the reason phrase when it is empty)."""
    message: str | None = None
    try:
        body = _json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
    if message is None:
        message = response.text.strip()[:1000] or response.reason_phrase or "(empty body)"
    return error_for_status(
        response.status_code,
        message,
        response.headers.get("X-Request-ID", request_id),
        parse_retry_after(response.headers.get("Retry-After")),
    )
