"""The in-process scikit-learn backend: TF Serving's model semantics for estimators on disk.

Each `ModelSource` names a base path whose digit-named subdirectories are versions
(`base_path/<version>/model.skops|model.joblib`, see `clients.sklearn_artifacts`). The
version policy picks which versions are served, labels map to versions, and a version that
fails to load is reported by `status()` as END with its error while everything else keeps
serving. Loading and every estimator call run in a bounded thread pool, never on the event
loop. A request holds its own reference to the loaded version, so unloading a version
(`reload()` after the policy drops it, or `close()`) never breaks a request in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from clients.base import Tensors
from clients.sklearn_artifacts import is_trusted_type, load_artifact, save_model
from clients.sklearn_errors import to_serving_error
from clients.sklearn_model import LoadedModel
from clients.types import (
    Classification,
    Code,
    ExampleBatch,
    ModelMetadata,
    ModelSource,
    ModelSpec,
    ModelState,
    ServingError,
    VersionPolicy,
    VersionStatus,
    invalid_argument,
)

__all__ = ["SklearnBackend", "is_trusted_type", "save_model", "scan_versions", "select_versions"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_INT64_MAX = 2**63 - 1


@dataclass
class _Version:
    status: VersionStatus
    model: LoadedModel | None = None


@dataclass
class _Model:
    source: ModelSource
    versions: dict[int, _Version] = field(default_factory=dict)


class SklearnBackend:
    """A `ModelBackend` serving scikit-learn estimators saved with `save_model`."""

    def __init__(
        self,
        models: Sequence[ModelSource],
        *,
        max_workers: int = 4,
        extra_trusted_types: Collection[str] = (),
    ) -> None:
        """`extra_trusted_types`: skops type names to trust beyond `is_trusted_type`'s policy."""
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        self._models = {m.name: _Model(m) for m in models}
        self._max_workers = max_workers
        self._extra_trusted = frozenset(extra_trusted_types)
        self._executor: ThreadPoolExecutor | None = None
        self._reload_lock = asyncio.Lock()

    async def start(self) -> None:
        """Start the thread pool and load every version the policies select."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="sklearn")
        await self.reload()

    async def reload(self) -> None:
        """Rescan the base paths: load versions the policy newly selects, unload dropped ones."""
        async with self._reload_lock:
            await asyncio.gather(*(self._reload_model(m) for m in self._models.values()))

    async def close(self) -> None:
        """Unload every version and stop the thread pool once requests in flight finish."""
        async with self._reload_lock:
            executor, self._executor = self._executor, None
            for model in self._models.values():
                for version in model.versions.values():
                    _unload(version)
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True)

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

    async def predict(self, spec: ModelSpec, inputs: Tensors) -> dict[str, np.ndarray]:
        """Run the estimator method of `spec.signature_name` on `inputs["inputs"]`."""
        model = self._resolve(spec)
        return await self._run(model.predict, spec.signature_name, inputs)

    async def classify(self, spec: ModelSpec, batch: ExampleBatch) -> list[Classification]:
        """(label, score) for every class, per example; classifiers only."""
        model = self._resolve(spec)
        return await self._run(model.classify, spec.signature_name, batch)

    async def regress(self, spec: ModelSpec, batch: ExampleBatch) -> list[float]:
        """One value per example; regressors only."""
        model = self._resolve(spec)
        return await self._run(model.regress, spec.signature_name, batch)

    def _resolve(self, spec: ModelSpec) -> LoadedModel:
        model = self._models.get(spec.name)
        version = spec.version
        if version is None and spec.label is not None:
            labels = model.source.version_labels if model is not None else {}
            if spec.label not in labels:
                raise invalid_argument(f"Unrecognized servable version label: {spec.label}")
            version = labels[spec.label]
        loaded = _find_loaded(model, version)
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

    async def _in_pool(self, fn: Callable[..., _T], *args: object) -> _T:
        executor = self._executor
        if executor is None:
            raise ServingError(Code.UNAVAILABLE, "The scikit-learn backend is not running")
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    async def _reload_model(self, model: _Model) -> None:
        base_path = Path(model.source.base_path)
        on_disk = await asyncio.to_thread(scan_versions, base_path)
        wanted = set(select_versions(model.source.version_policy, on_disk))
        for number, version in model.versions.items():
            if number not in wanted and version.model is not None:
                _unload(version)
        new = [v for v in sorted(wanted) if _needs_loading(model.versions.get(v))]
        for number in new:
            model.versions[number] = _Version(VersionStatus(number, ModelState.LOADING))
        await asyncio.gather(*(self._load(model, n, on_disk[n]) for n in new))

    async def _load(self, model: _Model, number: int, version_dir: Path) -> None:
        name = model.source.name
        try:
            loaded = await self._in_pool(
                _load_version, name, number, version_dir, self._extra_trusted
            )
        except Exception as exc:
            error = to_serving_error(exc, "load")
            _log.warning("model %s version %d failed to load: %s", name, number, error.message)
            status = VersionStatus(number, ModelState.END, error.code, error.message)
            model.versions[number] = _Version(status)
            return
        model.versions[number] = _Version(VersionStatus(number, ModelState.AVAILABLE), loaded)


def _load_version(
    name: str, number: int, version_dir: Path, extra_trusted: Collection[str]
) -> LoadedModel:
    return LoadedModel.build(name, number, load_artifact(version_dir, extra_trusted))


def _find_loaded(model: _Model | None, version: int | None) -> LoadedModel | None:
    if model is None:
        return None
    if version is None:
        loaded = [v.model for _, v in sorted(model.versions.items()) if v.model is not None]
        return loaded[-1] if loaded else None
    tracked = model.versions.get(version)
    return tracked.model if tracked is not None else None


def _needs_loading(version: _Version | None) -> bool:
    """Untracked versions, and versions unloaded earlier, load; failed versions stay failed."""
    if version is None:
        return True
    return version.status.state == ModelState.END and version.status.error_code == Code.OK


def _unload(version: _Version) -> None:
    version.model = None
    if version.status.state != ModelState.END:
        version.status = VersionStatus(version.status.version, ModelState.END)


def scan_versions(base_path: Path) -> dict[int, Path]:
    """Version number -> directory for every digit-named subdirectory of `base_path`.

    Leading zeros are allowed ("007" is version 7); when two names give the same number the
    first in sorted order wins. A missing or unreadable base path has no versions.
    """
    found: dict[int, Path] = {}
    try:
        entries = sorted(base_path.iterdir())
    except OSError as exc:
        _log.warning("cannot list model base path %s: %s", base_path, exc.strerror)
        return found
    for entry in entries:
        if entry.name.isdigit() and entry.name.isascii() and entry.is_dir():
            number = int(entry.name)
            if number <= _INT64_MAX:
                found.setdefault(number, entry)
    return found


def select_versions(policy: VersionPolicy, available: Collection[int]) -> list[int]:
    """The versions `policy` serves out of `available`, as TF Serving's version policies."""
    if policy.kind == "all":
        return sorted(available)
    if policy.kind == "specific":
        missing = sorted(set(policy.versions) - set(available))
        if missing:
            _log.warning("specific versions %s not found on disk", missing)
        return sorted(set(policy.versions) & set(available))
    return sorted(available)[-policy.num_versions :] if policy.num_versions > 0 else []
