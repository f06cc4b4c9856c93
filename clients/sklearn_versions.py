"""Version bookkeeping of the scikit-learn backend: what is on disk, what to load, what to retire.

The rules follow TF Serving's file system source and its default, availability-preserving
version policy:

* a version is a digit-named directory under the base path (`list_versions`); the model's
  version policy picks the versions that should serve (`select_versions`);
* a selected version loads fully before it serves; one that failed to load is tried again
  only once its directory's contents change (`fingerprint`), so a half-copied directory
  recovers when the copy completes;
* a version the policy no longer selects is retired only when no selected version exists,
  or one is AVAILABLE, or it is not the newest serving unselected version (`to_retire`):
  a broken new version never takes the model down.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from clients.metrics import MODEL_LOADS, MODEL_UNLOADS
from clients.sklearn_artifacts import LoadOptions, load_artifact
from clients.sklearn_model import LoadedModel
from clients.types import (
    Code,
    ModelSource,
    ModelState,
    ServingError,
    VersionPolicy,
    VersionStatus,
)

_log = logging.getLogger(__name__)
_INT64_MAX = 2**63 - 1

# Where a version directory really is, and (relative path, size, mtime in ns) of its entries.
Fingerprint = tuple[str, tuple[tuple[str, int, int], ...]]


@dataclass
class TrackedVersion:
    """One version's state; `fingerprint` is its directory at the last load attempt."""

    status: VersionStatus
    model: LoadedModel | None = None
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
        found = list_versions(Path(model.source.base_path))
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


def list_versions(base_path: Path) -> dict[int, Path]:
    """Version number -> directory for every digit-named subdirectory of `base_path`.

    Leading zeros are allowed ("007" is version 7); when two names give the same number the
    first in sorted order wins. Raises OSError when `base_path` cannot be listed.
    """
    found: dict[int, Path] = {}
    for entry in sorted(base_path.iterdir()):
        if entry.name.isdigit() and entry.name.isascii() and entry.is_dir():
            number = int(entry.name)
            if number <= _INT64_MAX:
                found.setdefault(number, entry)
    return found


def scan_versions(base_path: Path) -> dict[int, Path]:
    """`list_versions`, with a missing or unreadable base path having no versions."""
    try:
        return list_versions(base_path)
    except OSError as exc:
        _log.warning("cannot list model base path %s: %s", base_path, exc.strerror)
        return {}


def select_versions(policy: VersionPolicy, available: Collection[int]) -> list[int]:
    """The versions `policy` serves out of `available`, as TF Serving's version policies."""
    if policy.kind == "all":
        return sorted(available)
    if policy.kind == "specific":
        return sorted(set(policy.versions) & set(available))
    return sorted(available)[-policy.num_versions :] if policy.num_versions > 0 else []


def fingerprint(version_dir: Path) -> Fingerprint:
    """What `version_dir` resolves to and the size and mtime of everything in it."""
    entries: list[tuple[str, int, int]] = []
    for root, dirs, files in os.walk(version_dir):
        for name in dirs + files:
            path = Path(root, name)
            try:
                stat = path.lstat()
            except OSError:
                continue
            entries.append((str(path.relative_to(version_dir)), stat.st_size, stat.st_mtime_ns))
    return os.path.realpath(version_dir), tuple(sorted(entries))


def load_candidates(model: TrackedModel, wanted: Collection[int]) -> list[int]:
    """Selected versions that are not serving: new, retired earlier, failed or stale LOADING."""
    return [n for n in sorted(wanted) if _not_serving(model.versions.get(n))]


def needs_loading(version: TrackedVersion | None, current: Fingerprint) -> bool:
    """A failed version loads again only when its directory changed since it failed."""
    if version is None or version.status.error_code == Code.OK:
        return True
    return version.fingerprint != current


def to_retire(versions: Mapping[int, TrackedVersion], wanted: Collection[int]) -> list[int]:
    """Serving versions that are not selected and may go without losing availability.

    As TF Serving's availability-preserving policy: they all go when nothing is selected or a
    selected version is AVAILABLE; otherwise the newest of them keeps serving.
    """
    serving = sorted(n for n, v in versions.items() if v.model is not None and n not in wanted)
    selected_available = any(versions[n].model is not None for n in wanted if n in versions)
    if not wanted or selected_available:
        return serving
    return serving[:-1]


def find_loaded(model: TrackedModel | None, version: int | None) -> LoadedModel | None:
    """The loaded `version`, or the newest loaded version when `version` is None."""
    if model is None:
        return None
    if version is None:
        loaded = [v.model for _, v in sorted(model.versions.items()) if v.model is not None]
        return loaded[-1] if loaded else None
    tracked = model.versions.get(version)
    return tracked.model if tracked is not None else None


def _not_serving(version: TrackedVersion | None) -> bool:
    return version is None or version.model is None


def load_version(
    source: ModelSource, number: int, version_dir: Path, extra_trusted: Collection[str]
) -> LoadedModel:
    """Load and prepare one version (blocking: the backend runs it in its thread pool)."""
    options = LoadOptions(
        base_path=Path(source.base_path),
        allow_pickle=source.allow_pickle,
        sha256=source.sha256.get(number),
        extra_trusted=extra_trusted,
        describe=f"{source.name} version {number}",
    )
    return LoadedModel.build(source.name, number, load_artifact(version_dir, options))


def fingerprints(version_dirs: Mapping[int, Path]) -> dict[int, Fingerprint]:
    """`fingerprint` of every directory (blocking)."""
    return {number: fingerprint(path) for number, path in version_dirs.items()}


def record_loaded(
    model: TrackedModel, number: int, loaded: LoadedModel, before: Fingerprint, seconds: float
) -> None:
    """Make a freshly loaded version AVAILABLE: from now on it serves."""
    model.versions[number] = TrackedVersion(
        VersionStatus(number, ModelState.AVAILABLE), loaded, before
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
    if version.model is not None:
        version.model = None
        MODEL_UNLOADS.labels(model=model.source.name).inc()
        _log.info("model %s version %d unloaded", model.source.name, number)
    if version.status.state != ModelState.END:
        version.status = VersionStatus(number, ModelState.END)
