"""The in-process host: TF Serving's model semantics for models loaded in the gateway.

Each `ModelSource` names a base path whose digit-named subdirectories are versions; the
`ModelLoader` turns one into a `HostedVersion`. The version policy picks which versions are
served, labels map to versions, and a version that fails to load is reported by `status()`
as END with its error while everything else keeps serving. `reload()` (every
`poll_seconds` when set, as TF Serving's --file_system_poll_wait_seconds) loads new versions
fully before they serve and retires replaced ones only once their successors are AVAILABLE
(`clients.inprocess.tracking`). Loading and every model call run in a bounded thread pool,
never on the event loop; concurrent requests to one version and operation share one call
(`clients.inprocess.batching`). A request holds its own reference to the served version, so
retiring a version only stops new requests from reaching it: requests in flight finish on
it, then it is freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from clients.base import Tensors
from clients.inprocess.batching import Batcher, BatchingOptions, BatchStats, RowCall
from clients.inprocess.loader import HostedVersion, ModelLoader
from clients.inprocess.tracking import (
    ServedVersion,
    TrackedModel,
    TrackedVersion,
    find_served,
    fingerprints,
    load_candidates,
    needs_loading,
    record_failed,
    record_loaded,
    retire,
    scan,
    to_retire,
    wanted_versions,
)
from clients.types import (
    Classification,
    Code,
    ExampleBatch,
    ModelMetadata,
    ModelSource,
    ModelSpec,
    ModelState,
    ServingError,
    VersionStatus,
    invalid_argument,
    why_unavailable,
)
from clients.version_policy import Fingerprint

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class InProcessBackend:
    """A `ModelBackend` serving the models a `ModelLoader` loads, in this process."""

    def __init__(
        self,
        loader: ModelLoader,
        models: Sequence[ModelSource],
        *,
        max_workers: int = 4,
        poll_seconds: float = 0,
        batching: BatchingOptions = BatchingOptions(),  # noqa: B008 (frozen, so shareable)
    ) -> None:
        """`poll_seconds` > 0: `start()` rescans the base paths that often; 0 = on `reload()`."""
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        self._loader = loader
        self._models = {m.name: TrackedModel(m) for m in models}
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        self._reload_lock = asyncio.Lock()
        self._poll_seconds = poll_seconds
        self._poller: asyncio.Task[None] | None = None
        self._batching = batching
        self.batch_stats = BatchStats()

    @property
    def _not_running(self) -> ServingError:
        return ServingError(Code.UNAVAILABLE, f"The {self._loader.library} backend is not running")

    async def start(self) -> None:
        """Start the thread pool, load every version the policies select, start polling."""
        if self._executor is None:
            prefix = self._loader.library.replace("-", "")
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix=prefix)
        await self.reload()
        if self._poll_seconds > 0 and self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="inprocess-poll")

    async def reload(self) -> None:
        """Rescan the base paths: load newly selected versions, then retire replaced ones."""
        async with self._reload_lock:
            models = list(self._models.values())
            results = await asyncio.gather(
                *(self._reload_model(m) for m in models), return_exceptions=True
            )
        for model, result in zip(models, results, strict=True):
            if isinstance(result, Exception):
                _log.error("rescanning model %s failed", model.source.name, exc_info=result)
            elif isinstance(result, BaseException):
                raise result

    async def close(self) -> None:
        """Stop polling, unload every version, stop the pool once requests in flight finish."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        async with self._reload_lock:
            executor, self._executor = self._executor, None
            for model in self._models.values():
                for number in list(model.versions):
                    retire(model, number)
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True)

    async def _poll(self) -> None:
        """`reload()` every `poll_seconds`; a failing rescan is logged and polling goes on."""
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                await self.reload()
            except Exception:
                _log.exception("rescanning the %s model base paths failed", self._loader.library)

    async def metadata(self, spec: ModelSpec) -> ModelMetadata:
        """Resolve `spec` (latest, version or label) to a loaded version and its signatures."""
        return self._resolve(spec).hosted.metadata()

    async def status(self, name: str, version: int | None) -> list[VersionStatus]:
        """Every tracked version of `name`, newest first, or just `version` (labels don't apply)."""
        model = self._models.get(name)
        if model is None or not model.versions:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
        if version is None:
            return [model.versions[v].status for v in sorted(model.versions, reverse=True)]
        if version not in model.versions:
            raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {name}")
        return [model.versions[version].status]

    def why_unready(self, name: str) -> str | None:
        """None when `name` has an AVAILABLE version, else why not (in-memory state)."""
        model = self._models.get(name)
        versions = {} if model is None else model.versions
        return why_unavailable([versions[v].status for v in sorted(versions, reverse=True)])

    async def predict(self, spec: ModelSpec, inputs: Tensors) -> dict[str, np.ndarray]:
        """Run signature `spec.signature_name` of the resolved version on `inputs`."""
        served = self._resolve(spec)
        hosted = served.hosted
        return await self._answer(
            served, hosted.predict_call, hosted.predict, spec.signature_name, inputs
        )

    async def classify(self, spec: ModelSpec, batch: ExampleBatch) -> list[Classification]:
        """(label, score) for every class, per example; classifiers only."""
        served = self._resolve(spec)
        hosted = served.hosted
        return await self._answer(
            served, hosted.classify_call, hosted.classify, spec.signature_name, batch
        )

    async def regress(self, spec: ModelSpec, batch: ExampleBatch) -> list[float]:
        """One value per example; regressors only."""
        served = self._resolve(spec)
        hosted = served.hosted
        return await self._answer(
            served, hosted.regress_call, hosted.regress, spec.signature_name, batch
        )

    def _resolve(self, spec: ModelSpec) -> ServedVersion:
        model = self._models.get(spec.name)
        version = spec.version
        if version is None and spec.label is not None:
            labels = model.source.version_labels if model is not None else {}
            if spec.label not in labels:
                raise invalid_argument(f"Unrecognized servable version label: {spec.label}")
            version = labels[spec.label]
        served = find_served(model, version)
        if served is None:
            wanted = ModelSpec(spec.name, version).describe()
            raise ServingError(Code.NOT_FOUND, f"Servable not found for request: {wanted}")
        return served

    def _request_error(self, exc: Exception) -> ServingError:
        return self._loader.to_serving_error(exc, "request")

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run `fn(*args)` in the pool; the one place request errors become `ServingError`."""
        try:
            return await self._in_pool(fn, *args)
        except Exception as exc:
            raise self._request_error(exc) from exc

    async def _answer(
        self,
        served: ServedVersion,
        plan: Callable[..., RowCall[_T] | None],
        solo: Callable[..., _T],
        *args: object,
    ) -> _T:
        """`solo(*args)` as a batchable call if `plan(*args, max_size)` gives one (checked on
        the loop), merged with concurrent ones; else on its own in the pool."""
        call = None
        if self._batching.enabled:
            try:
                call = plan(*args, self._batching.max_size)
            except Exception as exc:
                raise self._request_error(exc) from exc
        if call is not None:
            return await self._batched(served, call)
        self.batch_stats.solo += 1
        return await self._run(solo, *args)

    async def _batched(self, served: ServedVersion, call: RowCall[_T]) -> _T:
        """Run `call` merged with concurrent calls of the same version and operation."""
        batcher = served.batchers.get(call.key)
        if batcher is None:
            op = served.hosted.row_op(call.key)
            batcher = Batcher(op, self._batching, self.batch_stats, self._submit)
            served.batchers[call.key] = batcher
        try:
            return call.finish(await batcher.submit(call.x))
        except Exception as exc:
            raise self._request_error(exc) from exc

    def _submit(self, job: Callable[[], None]) -> None:
        executor = self._executor
        if executor is None:
            raise self._not_running
        executor.submit(job)

    async def _in_pool(self, fn: Callable[..., _T], *args: object) -> _T:
        executor = self._executor
        if executor is None:
            raise self._not_running
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    async def _reload_model(self, model: TrackedModel) -> None:
        on_disk = await asyncio.to_thread(scan, model)
        if on_disk is None:  # the base path cannot be listed: leave everything as it is
            return
        wanted = wanted_versions(model, on_disk)
        candidates = {n: on_disk[n] for n in load_candidates(model, wanted)}
        prints = await asyncio.to_thread(fingerprints, candidates)
        new = [n for n in candidates if needs_loading(model.versions.get(n), prints[n])]
        for number in new:
            model.versions[number] = TrackedVersion(VersionStatus(number, ModelState.LOADING))
        await asyncio.gather(*(self._load(model, n, on_disk[n], prints[n]) for n in new))
        for number in to_retire(model.versions, wanted):
            retire(model, number)

    async def _load(
        self, model: TrackedModel, number: int, version_dir: Path, before: Fingerprint
    ) -> None:
        started = time.monotonic()
        try:
            hosted: HostedVersion = await self._in_pool(
                self._loader.load, model.source, number, version_dir
            )
        except Exception as exc:
            record_failed(model, number, self._loader.to_serving_error(exc, "load"), before)
        else:
            record_loaded(model, number, hosted, before, time.monotonic() - started)
