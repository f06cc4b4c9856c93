"""Which versions of which models are served: discovery, version policy, labels, status.

A small, lock-protected version of TF Serving's FileSystemStoragePathSource +
AspiredVersionsManager (AvailabilityPreservingPolicy) + ServableStateMonitor:
- each poll lists the version directories and applies the version policy (versions.py);
- then it acts like AspiredVersionsManager: one policy action at a time, unloads first,
  a new version loaded fully before it is served, the old one unloaded only once an
  aspired version is AVAILABLE (or none is aspired);
- an unload waits for the requests holding that version (`LoadedVersion.close`);
- a failed load ends in END with its error; it is not retried while it stays aspired,
  unless its files change (an incomplete directory that was completed since).
Loads run outside the lock, so serving other versions and models never waits on them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc

from tfserving_compat.config import ModelConfig
from tfserving_compat.errors import (
    ServingError,
    failed_precondition,
    internal,
    invalid_argument,
    not_found,
)
from tfserving_compat.loader import LoadedVersion
from tfserving_compat.versions import (
    AVAILABLE,
    END,
    LOADING,
    UNLOADING,
    VersionEntry,
    VersionStatus,
    aspired_versions,
    dir_fingerprint,
    list_versions,
    needs_load,
    next_action,
)

_LOG = logging.getLogger(__name__)

Loader = Callable[[str], LoadedVersion]


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
        """One poll of one model: take in what is on disk, then act until nothing is left."""
        config = self._configs[name]
        found = list_versions(config.base_path)
        if found is None:
            return  # an unlistable base path changes nothing (TF Serving: a failed poll)
        aspired = aspired_versions(config, found)
        with self._lock:
            current = dict(self._versions[name])
        fresh = [v for v in aspired if needs_load(current.get(v))]  # may stat files: unlocked
        with self._lock:
            versions = self._versions[name]
            for version in fresh:
                versions[version] = VersionEntry(path=found[version])
            for version, entry in versions.items():
                entry.aspired = version in aspired
        pinned = config.specific_versions if config.policy == "specific" else frozenset()
        while True:
            with self._lock:
                action = next_action(self._versions[name], aspired, pinned)
                if action is None:
                    return
                kind, version = action
                entry = self._versions[name][version]
                entry.state = LOADING if kind == "load" else UNLOADING
            if kind == "load":
                self._load(name, version, entry)
            else:
                self._unload(name, version, entry)

    def _load(self, name: str, version: int, entry: VersionEntry) -> None:
        """Loads one version (state LOADING) into AVAILABLE, or END with the error."""
        entry.fingerprint = dir_fingerprint(entry.path)
        _LOG.info(
            "Loading servable version {name: %s version: %d} from %s", name, version, entry.path
        )
        error: ServingError | None = None
        loaded: LoadedVersion | None = None
        for attempt in range(self._retries + 1):
            if attempt and self._stop.wait(self._retry_interval):
                break
            try:
                loaded = self._loader(entry.path)
                break
            except Exception as exc:
                if not isinstance(exc, ServingError):
                    _LOG.exception("Unexpected error loading %s version %d", name, version)
                error = exc if isinstance(exc, ServingError) else internal(f"{exc!r}"[:300])
                _LOG.error("Servable {name: %s version: %d} load failure: %s", name, version, exc)
        with self._lock:
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

    def _unload(self, name: str, version: int, entry: VersionEntry) -> None:
        """Unloads one version (state UNLOADING) once its requests finish; then END."""
        _LOG.info("Unloading servable version {name: %s version: %d}", name, version)
        if entry.loaded is not None:
            entry.loaded.close()  # waits for the requests holding it
        with self._lock:
            entry.state, entry.loaded = END, None
        _LOG.info("Done unloading servable version {name: %s version: %d}", name, version)

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
                live = [(v, e) for v, e in self._versions[name].items() if e.state == AVAILABLE]
                for _, entry in live:
                    entry.state = UNLOADING
            for version, entry in live:
                self._unload(name, version, entry)

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
