"""Which versions of which models are served: discovery, version policy, labels, status.

A small, lock-protected version of TF Serving's FileSystemStoragePathSource +
AspiredVersionsManager (AvailabilityPreservingPolicy) + ServableStateMonitor:
- versions are the all-digit directories under a model's base path;
- the policy picks the aspired ones (latest N, all, specific);
- a new version is loaded fully before it is served; versions that are no longer
  aspired are unloaded only once an aspired version is available (or none is aspired);
- a failed load ends in state END with its error and is not retried by later polls.
Loads run outside the lock, so serving other versions and models never waits on them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from tfserving_compat.config import ModelConfig
from tfserving_compat.errors import ServingError, failed_precondition, invalid_argument, not_found
from tfserving_compat.loader import LoadedVersion

_LOG = logging.getLogger(__name__)

# Values of tensorflow.serving.ModelVersionStatus.State (get_model_status.proto).
START, LOADING, AVAILABLE, UNLOADING, END = 10, 20, 30, 40, 50

Loader = Callable[[str], LoadedVersion]


@dataclass
class VersionEntry:
    """What the server knows about one version: its state, load error and servable."""

    path: str
    state: int = START
    error: ServingError | None = None
    loaded: LoadedVersion | None = None


@dataclass(frozen=True)
class VersionStatus:
    """One row of GetModelStatus."""

    version: int
    state: int
    error: ServingError | None


def list_versions(base_path: str) -> dict[int, str]:
    """Version number -> directory, for every all-digit directory name under base_path."""
    try:
        names = sorted(os.listdir(base_path))
    except OSError as exc:
        _LOG.warning("Could not list base path %s: %s", base_path, exc)
        return {}
    found: dict[int, str] = {}
    for name in names:
        path = os.path.join(base_path, name)
        if not (name.isascii() and name.isdigit()) or not os.path.isdir(path):
            continue
        version = int(name)
        if version >= 2**63:
            continue
        found.setdefault(version, path)
    if not found:
        _LOG.warning("No versions of servable found under base path %s", base_path)
    return found


def aspired_versions(config: ModelConfig, found: dict[int, str]) -> set[int]:
    """The versions the model's version policy wants served, among those on disk."""
    if config.policy == "all":
        return set(found)
    if config.policy == "specific":
        return set(found) & set(config.specific_versions)
    return set(sorted(found, reverse=True)[: config.num_latest])


class ModelManager:
    """Thread-safe registry of models and versions; loads, unloads and resolves them."""

    def __init__(
        self,
        configs: Sequence[ModelConfig],
        loader: Loader,
        max_num_load_retries: int = 0,
        load_retry_interval_s: float = 60.0,
    ) -> None:
        self._configs = {config.name: config for config in configs}
        self._versions: dict[str, dict[int, VersionEntry]] = {c.name: {} for c in configs}
        self._loader = loader
        self._retries = max_num_load_retries
        self._retry_interval = load_retry_interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # ---- loading ---------------------------------------------------------------------

    def load_initial(self, max_threads: int = 4) -> None:
        """Loads every model's aspired versions in parallel and waits for all of them."""
        if not self._configs:
            return
        with ThreadPoolExecutor(
            max_workers=max(1, min(max_threads, len(self._configs))),
            thread_name_prefix="initial-load",
        ) as pool:
            for future in [pool.submit(self.sync_model, name) for name in self._configs]:
                future.result()

    def sync_model(self, name: str) -> None:
        """One poll of one model: load new aspired versions, then unload stale ones."""
        config = self._configs[name]
        found = list_versions(config.base_path)
        aspired = aspired_versions(config, found)
        with self._lock:
            versions = self._versions[name]
            to_load = []
            for version in sorted(aspired):
                entry = versions.get(version)
                if entry is None or (entry.state == END and entry.error is None):
                    versions[version] = VersionEntry(path=found[version])
                    to_load.append(version)
        for version in to_load:
            self._load(name, version, found[version])
        self._unload_stale(name, aspired)

    def _load(self, name: str, version: int, path: str) -> None:
        with self._lock:
            self._versions[name][version].state = LOADING
        _LOG.info("Loading servable version {name: %s version: %d} from %s", name, version, path)
        error: ServingError | None = None
        loaded: LoadedVersion | None = None
        for attempt in range(self._retries + 1):
            if attempt and self._stop.wait(self._retry_interval):
                break
            try:
                loaded = self._loader(path)
                break
            except ServingError as exc:
                error = exc
                _LOG.error("Servable {name: %s version: %d} load failure: %s", name, version, exc)
        with self._lock:
            entry = self._versions[name][version]
            if loaded is not None:
                entry.state, entry.loaded, entry.error = AVAILABLE, loaded, None
                _LOG.info(
                    "Successfully loaded servable version {name: %s version: %d}", name, version
                )
            else:
                entry.state = END
                entry.error = error or ServingError(
                    grpc.StatusCode.CANCELLED, "Load cancelled before we could try to load."
                )

    def _unload_stale(self, name: str, aspired: set[int]) -> None:
        with self._lock:
            versions = self._versions[name]
            aspired_ready = any(versions[v].state == AVAILABLE for v in aspired if v in versions)
            if aspired and not aspired_ready:
                return  # availability preserving: keep serving what we have
            stale = [v for v, e in versions.items() if v not in aspired and e.state == AVAILABLE]
            for version in stale:
                versions[version].state = UNLOADING
        for version in stale:
            self._unload(name, version)

    def _unload(self, name: str, version: int) -> None:
        with self._lock:
            loaded = self._versions[name][version].loaded
        _LOG.info("Unloading servable version {name: %s version: %d}", name, version)
        if loaded is not None:
            loaded.close()
        with self._lock:
            entry = self._versions[name][version]
            entry.state, entry.loaded = END, None

    # ---- polling ---------------------------------------------------------------------

    def start_polling(self, interval_s: float) -> None:
        """Polls every model's base path every interval_s seconds, in a daemon thread."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                for name in self._configs:
                    try:
                        self.sync_model(name)
                    except Exception:
                        _LOG.exception("Polling model %s failed", name)

        self._poller = threading.Thread(target=loop, name="fs-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        """Stops polling and unloads every version."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=30)
        for name in self._configs:
            with self._lock:
                live = [v for v, e in self._versions[name].items() if e.state == AVAILABLE]
                for version in live:
                    self._versions[name][version].state = UNLOADING
            for version in live:
                self._unload(name, version)

    # ---- labels, resolution and status ----------------------------------------------

    def validate_labels(self, allow_unavailable: bool) -> None:
        """server_core.cc UpdateModelVersionLabelMap: labels must name available versions."""
        if allow_unavailable:
            return
        with self._lock:
            for name, config in self._configs.items():
                for version in config.labels.values():
                    entry = self._versions[name].get(version)
                    if entry is None or entry.state != AVAILABLE:
                        raise failed_precondition(
                            f"Request to assign label to version {version} of model {name}, "
                            "which is not currently available for inference"
                        )

    def resolve_version(self, name: str, version: int | None, label: str | None) -> int | None:
        """server_core.cc ServableRequestFromModelSpec: a label becomes a specific version."""
        if not name:
            raise invalid_argument("ModelSpec has no name specified.")
        if label is None:
            return version
        config = self._configs.get(name)
        if config is None or label not in config.labels:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return config.labels[label]

    @contextlib.contextmanager
    def servable(self, name: str, version: int | None) -> Iterator[tuple[int, LoadedVersion]]:
        """Holds an available version (the latest when version is None) while in use."""
        found = self._acquire(name, version)
        if found is None:
            request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise not_found(f"Servable not found for request: {request}")
        try:
            yield found
        finally:
            found[1].release()

    def _acquire(self, name: str, version: int | None) -> tuple[int, LoadedVersion] | None:
        with self._lock:
            versions = self._versions.get(name, {})
            candidates = sorted(versions, reverse=True) if version is None else [version]
            for candidate in candidates:
                entry = versions.get(candidate)
                if entry and entry.state == AVAILABLE and entry.loaded and entry.loaded.acquire():
                    return candidate, entry.loaded
        return None

    def status(self, name: str, version: int | None) -> list[VersionStatus]:
        """get_model_status_impl.cc: one version, or all tracked versions newest first."""
        with self._lock:
            versions = self._versions.get(name, {})
            if version is not None:
                entry = versions.get(version)
                if entry is None:
                    raise not_found(f"Could not find version {version} of model {name}")
                return [VersionStatus(version, entry.state, entry.error)]
            if not versions:
                raise not_found(f"Could not find any versions of model {name}")
            return [
                VersionStatus(v, versions[v].state, versions[v].error)
                for v in sorted(versions, reverse=True)
            ]
