"""The blocking client: `Client("http://localhost:8000").predict("half_plus_two", [1.0])`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx
import numpy as np
from numpy.typing import NDArray

from . import _core
from ._json import ArrayLike, Prediction
from ._retry import RetryPolicy
from ._types import Classification, ModelMetadata, ModelVersionStatus

T = TypeVar("T")


class Client:
    """A client of TF Serving's REST API (the gateway's, or TF Serving's own).

    - `base_url`: the server, e.g. `http://localhost:8000` (a path prefix is kept).
    - `timeout`: every call's deadline in seconds, retries included, sent as
      `X-Request-Timeout` (None: no deadline; each call can pass its own).
    - `retry`: how 429 and 503 answers are retried (`RetryPolicy(max_retries=0)`: never).
    - `api_key`: sent as `Authorization: Bearer <key>`; `headers`: added to every request.
    - `http_client`: an `httpx.Client` of your own (proxies, TLS, event hooks); it is not
      closed by `close()`. Without one the client makes its own, whose transport retries
      failed connection attempts `connect_retries` times.
    """

    def __init__(
        self,
        base_url: str = "http://localhost:8000",
        *,
        timeout: float | None = 10.0,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
        connect_retries: int = 2,
    ) -> None:
        self._config = _core.Config.build(base_url, timeout, retry, api_key, headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            transport=httpx.HTTPTransport(retries=connect_retries)
        )

    def _run(self, call: _core.Call[T], timeout: float | None, request_id: str | None) -> T:
        steps = _core.exchange(self._config, call, timeout, request_id)
        try:
            step = next(steps)
            while True:
                if isinstance(step, _core.Sleep):
                    time.sleep(step.seconds)
                    step = steps.send(None)
                    continue
                try:
                    response = self._http.request(
                        step.method,
                        step.url,
                        content=step.content,
                        headers=step.headers,
                        timeout=step.timeout,
                    )
                except httpx.TransportError as error:
                    step = steps.throw(error)
                else:
                    step = steps.send(response)
        except StopIteration as done:
            return cast(T, done.value)

    def predict(
        self,
        model: str,
        instances: ArrayLike | Mapping[str, ArrayLike],
        *,
        signature_name: str | None = None,
        version: int | None = None,
        label: str | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> Prediction:
        """Row format: `instances` is a batch for a one-input signature (an array, whose
        rows are sent, or a list), or a mapping from input name to batch. Returns one
        array for a one-output signature, else a dict from output name to array (rows
        stacked). `timeout` overrides the client's; `request_id` is sent as
        `X-Request-ID` (default: a new random id)."""
        call = _core.predict_call(model, instances, signature_name, version, label)
        return self._run(call, timeout, request_id)

    def predict_columnar(
        self,
        model: str,
        inputs: ArrayLike | Mapping[str, ArrayLike],
        *,
        signature_name: str | None = None,
        version: int | None = None,
        label: str | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> Prediction:
        """Columnar format: `inputs` is one tensor or a mapping from input name to tensor
        (no batch dimension is added). Returns one array or a dict, as `predict`."""
        call = _core.predict_columnar_call(model, inputs, signature_name, version, label)
        return self._run(call, timeout, request_id)

    def classify(
        self,
        model: str,
        examples: Sequence[Mapping[str, ArrayLike]],
        *,
        context: Mapping[str, ArrayLike] | None = None,
        signature_name: str | None = None,
        version: int | None = None,
        label: str | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> Classification:
        """`:classify`: each example maps a feature to a value or a flat list (floats are
        float features, ints int64 ones, bytes/str bytes ones); `context` holds features
        shared by every example. Returns labels and scores, one row per example."""
        call = _core.classify_call(model, examples, context, signature_name, version, label)
        return self._run(call, timeout, request_id)

    def regress(
        self,
        model: str,
        examples: Sequence[Mapping[str, ArrayLike]],
        *,
        context: Mapping[str, ArrayLike] | None = None,
        signature_name: str | None = None,
        version: int | None = None,
        label: str | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> NDArray[np.float64]:
        """`:regress`: examples as for `classify`; one float64 value per example."""
        call = _core.regress_call(model, examples, context, signature_name, version, label)
        return self._run(call, timeout, request_id)

    def status(
        self,
        model: str,
        *,
        version: int | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> list[ModelVersionStatus]:
        """`GET /v1/models/NAME[/versions/N]`: every version (or that one), newest first."""
        return self._run(_core.status_call(model, version), timeout, request_id)

    def metadata(
        self,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> ModelMetadata:
        """`GET .../metadata`: the signatures of the version that answers."""
        return self._run(_core.metadata_call(model, version, label), timeout, request_id)

    def infer(
        self,
        model: str,
        inputs: Mapping[str, ArrayLike],
        *,
        outputs: Sequence[str] | None = None,
        parameters: Mapping[str, Any] | None = None,
        version: int | str | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> dict[str, NDArray[Any]]:
        """Open Inference Protocol (v2) infer: `inputs` maps input names to arrays (sent
        with their shape and datatype); returns every output (or those in `outputs`) by
        name. `parameters` go with the request (e.g. `signature_name`); a string
        `version` is a version label."""
        call = _core.infer_call(model, inputs, outputs, parameters, version)
        return self._run(call, timeout, request_id)

    def list_models(
        self, *, timeout: float | None = None, request_id: str | None = None
    ) -> list[str]:
        """`GET /v1/models`: the names of the served models (`{"models": [...]}`)."""
        return self._run(_core.list_models_call(), timeout, request_id)

    def close(self) -> None:
        """Close the connections (not those of an `http_client` passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self._config.base_url!r})"


__all__ = ["Client"]
