"""Version bookkeeping of the in-process host: what is on disk, what to load, what to retire.

The rules are `clients.version_policy` (shared with the TF-Serving-compatible backend);
this module applies them to the host's `TrackedModel`s:

* a selected version loads fully before it serves; one that failed to load is tried again
  only once its directory's fingerprint changes (`needs_loading`);
* a version the policy no longer selects is retired only when that keeps the model
  available (`to_retire`): a broken new version never takes the model down.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from clients.inprocess.batching import Batcher
from clients.inprocess.loader import HostedVersion
from clients.metrics import MODEL_LOADS, MODEL_UNLOADS
from clients.types import (
    Code,
    ModelSource,
    ModelState,
    ServingError,
    VersionStatus,
)
from clients.version_policy import (
    Fingerprint,
    fingerprint,
    list_versions,
    retirable,
    select_versions,
)

_log = logging.getLogger(__name__)


@dataclass(eq=False)
class ServedVersion:
    """A loaded version as the host serves it: the library's object and its batchers."""

    hosted: HostedVersion
    batchers: dict[str, Batcher] = field(default_factory=dict)
    """The host's batchers for this version, by `RowCall.key`."""


@dataclass
class TrackedVersion:
    """One version's state; `fingerprint` is its directory at the last load attempt."""

    status: VersionStatus
    served: ServedVersion | None = None
    fingerprint: Fingerprint | None = None


@dataclass
class TrackedModel:
    """A configured model and every version seen so far."""

    source: ModelSource
    versions: dict[int, TrackedVersion] = field(default_factory=dict)
    scan_error: str | None = None  # why the last scan failed, logged once
    missing: frozenset[int] = frozenset()  # specific versions not on disk, logged once


def scan(model: TrackedModel) -> dict[int, Path] | None:
    """`list_versions` of the model's base path, or None (logged once) when it cannot be listed."""
    try:
        found = list_versions(model.source.base_path)
    except OSError as exc:
        error = exc.strerror or type(exc).__name__
        if error != model.scan_error:
            _log.warning(
                "cannot list the base path of model %s (%s); its versions stay as they are",
                model.source.name,
                error,
            )
        model.scan_error = error
        return None
    if model.scan_error is not None:
        _log.info("the base path of model %s can be listed again", model.source.name)
    model.scan_error = None
    return found


def scan_versions(base_path: Path) -> dict[int, Path]:
    """`list_versions`, with a missing or unreadable base path having no versions."""
    try:
        return list_versions(base_path)
    except OSError as exc:
        _log.warning("cannot list model base path %s: %s", base_path, exc.strerror)
        return {}


def wanted_versions(model: TrackedModel, on_disk: Collection[int]) -> set[int]:
    """The versions the model's policy selects out of `on_disk`; warns of missing ones once."""
    policy = model.source.version_policy
    missing = frozenset(policy.versions) - set(on_disk) if policy.kind == "specific" else set()
    if missing and missing != model.missing:
        _log.warning(
            "model %s: specific versions %s are not on disk", model.source.name, sorted(missing)
        )
    model.missing = frozenset(missing)
    return set(select_versions(policy, on_disk))


def load_candidates(model: TrackedModel, wanted: Collection[int]) -> list[int]:
    """Selected versions that are not serving: new, retired earlier, failed or stale LOADING."""
    return [n for n in sorted(wanted) if _not_serving(model.versions.get(n))]


def needs_loading(version: TrackedVersion | None, current: Fingerprint) -> bool:
    """A failed version loads again only when its directory changed since it failed."""
    if version is None or version.status.error_code == Code.OK:
        return True
    return version.fingerprint != current


def to_retire(versions: Mapping[int, TrackedVersion], wanted: Collection[int]) -> list[int]:
    """Serving versions that are not selected and may go without losing availability."""
    serving = [n for n, v in versions.items() if v.served is not None and n not in wanted]
    selected_available = any(versions[n].served is not None for n in wanted if n in versions)
    return retirable(serving, any_selected=bool(wanted), selected_available=selected_available)


def find_served(model: TrackedModel | None, version: int | None) -> ServedVersion | None:
    """The served `version`, or the newest served version when `version` is None."""
    if model is None:
        return None
    if version is None:
        served = [v.served for _, v in sorted(model.versions.items()) if v.served is not None]
        return served[-1] if served else None
    tracked = model.versions.get(version)
    return tracked.served if tracked is not None else None


def _not_serving(version: TrackedVersion | None) -> bool:
    return version is None or version.served is None


def fingerprints(version_dirs: Mapping[int, Path]) -> dict[int, Fingerprint]:
    """`fingerprint` of every directory (blocking)."""
    return {number: fingerprint(path) for number, path in version_dirs.items()}


def record_loaded(
    model: TrackedModel, number: int, hosted: HostedVersion, before: Fingerprint, seconds: float
) -> None:
    """Make a freshly loaded version AVAILABLE: from now on it serves."""
    model.versions[number] = TrackedVersion(
        VersionStatus(number, ModelState.AVAILABLE), ServedVersion(hosted), before
    )
    MODEL_LOADS.labels(model=model.source.name, outcome="loaded").inc()
    _log.info("model %s version %d loaded in %.2f s", model.source.name, number, seconds)


def record_failed(
    model: TrackedModel, number: int, error: ServingError, before: Fingerprint
) -> None:
    """Mark a version END with the error that stopped it from loading."""
    status = VersionStatus(number, ModelState.END, error.code, error.message)
    model.versions[number] = TrackedVersion(status, fingerprint=before)
    MODEL_LOADS.labels(model=model.source.name, outcome="failed").inc()
    _log.warning("model %s version %d failed to load: %s", model.source.name, number, error.message)


def retire(model: TrackedModel, number: int) -> None:
    """Stop routing requests to a version; requests in flight keep their own reference."""
    version = model.versions[number]
    if version.served is not None:
        version.served = None
        MODEL_UNLOADS.labels(model=model.source.name).inc()
        _log.info("model %s version %d unloaded", model.source.name, number)
    if version.status.state != ModelState.END:
        version.status = VersionStatus(number, ModelState.END)
