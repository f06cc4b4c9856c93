"""The in-process scikit-learn backend: TF Serving's model semantics for estimators on disk.

Each `ModelSource` names a base path whose digit-named subdirectories are versions
(`base_path/<version>/model.skops|model.joblib`, see `clients.sklearn_artifacts`). The
version policy picks which versions are served, labels map to versions, and a version that
fails to load is reported by `status()` as END with its error while everything else keeps
serving. `reload()` (every `poll_seconds` when set, as TF Serving's
--file_system_poll_wait_seconds) loads new versions fully before they serve and retires
replaced ones only once their successors are AVAILABLE (see `clients.sklearn_versions`).
Loading and every estimator call run in a bounded thread pool, never on the event loop;
concurrent requests to one version and method share one call (`clients.sklearn_batching`).
A request holds its own reference to the loaded version, so retiring a version only stops
new requests from reaching it: requests in flight finish on it, then it is freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from clients.base import Tensors
from clients.sklearn_artifacts import is_trusted_type, load_artifact, save_model
from clients.sklearn_batching import Batcher, BatchingOptions, BatchStats, RowCall
from clients.sklearn_errors import to_serving_error
from clients.sklearn_model import LoadedModel
from clients.sklearn_versions import (
    Fingerprint,
    TrackedModel,
    TrackedVersion,
    find_loaded,
    fingerprints,
    load_candidates,
    load_version,
    needs_loading,
    record_failed,
    record_loaded,
    retire,
    scan,
    scan_versions,
    select_versions,
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

__all__ = [
    "SklearnBackend",
    "is_trusted_type",
    "load_artifact",
    "save_model",
    "scan_versions",
    "select_versions",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class SklearnBackend:
    """A `ModelBackend` serving scikit-learn estimators saved with `save_model`."""

    def __init__(
        self,
        models: Sequence[ModelSource],
        *,
        max_workers: int = 4,
        extra_trusted_types: Collection[str] = (),
        poll_seconds: float = 0,
        batching: BatchingOptions = BatchingOptions(),  # noqa: B008 (frozen, so shareable)
    ) -> None:
        """`extra_trusted_types`: skops type names to trust beyond `is_trusted_type`'s policy.

        `poll_seconds` > 0: `start()` rescans the base paths that often; 0 = only on `reload()`.
        """
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        self._models = {m.name: TrackedModel(m) for m in models}
        self._max_workers = max_workers
        self._extra_trusted = frozenset(extra_trusted_types)
        self._executor: ThreadPoolExecutor | None = None
        self._reload_lock = asyncio.Lock()
        self._poll_seconds = poll_seconds
        self._poller: asyncio.Task[None] | None = None
        self._batching = batching
        self.batch_stats = BatchStats()

    async def start(self) -> None:
        """Start the thread pool, load every version the policies select, start polling."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="sklearn")
        await self.reload()
        if self._poll_seconds > 0 and self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="sklearn-poll")

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
                _log.exception("rescanning the scikit-learn model base paths failed")

    async def metadata(self, spec: ModelSpec) -> ModelMetadata:
        """Resolve `spec` (latest, version or label) to a loaded version and its signatures."""
        return self._resolve(spec).metadata()

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
        """Run the estimator method of `spec.signature_name` on `inputs["inputs"]`."""
        model = self._resolve(spec)
        return await self._answer(
            model, model.predict_call, model.predict, spec.signature_name, inputs
        )

    async def classify(self, spec: ModelSpec, batch: ExampleBatch) -> list[Classification]:
        """(label, score) for every class, per example; classifiers only."""
        model = self._resolve(spec)
        return await self._answer(
            model, model.classify_call, model.classify, spec.signature_name, batch
        )

    async def regress(self, spec: ModelSpec, batch: ExampleBatch) -> list[float]:
        """One value per example; regressors only."""
        model = self._resolve(spec)
        return await self._answer(
            model, model.regress_call, model.regress, spec.signature_name, batch
        )

    def _resolve(self, spec: ModelSpec) -> LoadedModel:
        model = self._models.get(spec.name)
        version = spec.version
        if version is None and spec.label is not None:
            labels = model.source.version_labels if model is not None else {}
            if spec.label not in labels:
                raise invalid_argument(f"Unrecognized servable version label: {spec.label}")
            version = labels[spec.label]
        loaded = find_loaded(model, version)
        if loaded is None:
            wanted = ModelSpec(spec.name, version).describe()
            raise ServingError(Code.NOT_FOUND, f"Servable not found for request: {wanted}")
        return loaded

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run `fn(*args)` in the pool; the one place request errors become `ServingError`."""
        try:
            return await self._in_pool(fn, *args)
        except Exception as exc:
            raise to_serving_error(exc, "request") from exc

    async def _answer(
        self,
        model: LoadedModel,
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
                raise to_serving_error(exc, "request") from exc
        if call is not None:
            return await self._batched(model, call)
        self.batch_stats.solo += 1
        return await self._run(solo, *args)

    async def _batched(self, model: LoadedModel, call: RowCall[_T]) -> _T:
        """Run `call` merged with concurrent calls of the same version and operation."""
        batcher = model.batchers.get(call.key)
        if batcher is None:
            op = model.row_op(call.key)
            batcher = Batcher(op, self._batching, self.batch_stats, self._submit)
            model.batchers[call.key] = batcher
        try:
            return call.finish(await batcher.submit(call.x))
        except Exception as exc:
            raise to_serving_error(exc, "request") from exc

    def _submit(self, job: Callable[[], None]) -> None:
        executor = self._executor
        if executor is None:
            raise ServingError(Code.UNAVAILABLE, "The scikit-learn backend is not running")
        executor.submit(job)

    async def _in_pool(self, fn: Callable[..., _T], *args: object) -> _T:
        executor = self._executor
        if executor is None:
            raise ServingError(Code.UNAVAILABLE, "The scikit-learn backend is not running")
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
            loaded = await self._in_pool(
                load_version, model.source, number, version_dir, self._extra_trusted
            )
        except Exception as exc:
            record_failed(model, number, to_serving_error(exc, "load"), before)
        else:
            record_loaded(model, number, loaded, before, time.monotonic() - started)
