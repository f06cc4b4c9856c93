"""Version discovery and the version policy, without locks or TensorFlow.

- `list_versions` is FileSystemStoragePathSource: every all-digit directory is a version;
- `aspired_versions` applies the model's version policy (latest N, all, specific);
- `next_action` is AvailabilityPreservingPolicy::GetNextAction
  (tensorflow_serving/core/availability_preserving_policy.cc): unload before load, never
  drop the last serving version until an aspired one is ready, load the highest new one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tfserving_compat.config import ModelConfig
from tfserving_compat.errors import ServingError
from tfserving_compat.loader import LoadedVersion

_LOG = logging.getLogger(__name__)

# Values of tensorflow.serving.ModelVersionStatus.State (get_model_status.proto).
START, LOADING, AVAILABLE, UNLOADING, END = 10, 20, 30, 40, 50

Fingerprint = tuple[tuple[str, int, int], ...]
Action = tuple[Literal["load", "unload"], int]


@dataclass
class VersionEntry:
    """What the server knows about one version: its state, load error and servable."""

    path: str
    state: int = START
    error: ServingError | None = None
    loaded: LoadedVersion | None = None
    aspired: bool = True  # as of the last poll
    # The directory's contents when the last load started (see `dir_fingerprint`).
    fingerprint: Fingerprint | None = None


@dataclass(frozen=True)
class VersionStatus:
    """One row of GetModelStatus."""

    version: int
    state: int
    error: ServingError | None


def list_versions(base_path: str) -> dict[int, str] | None:
    """Version number -> directory for every all-digit directory; None if unlistable.

    file_system_storage_path_source.cc: a base path that cannot be listed is an error of
    that poll, and the aspired versions stay as they were.
    """
    try:
        names = sorted(os.listdir(base_path))
    except OSError as exc:
        _LOG.warning("Could not list base path %s: %s", base_path, exc)
        return None
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


def aspired_versions(config: ModelConfig, found: Mapping[int, str]) -> set[int]:
    """The versions the model's version policy wants served, among those on disk."""
    if config.policy == "all":
        return set(found)
    if config.policy == "specific":
        return set(found) & set(config.specific_versions)
    return set(sorted(found, reverse=True)[: config.num_latest])


def dir_fingerprint(path: str) -> Fingerprint:
    """(relative path, size, mtime) of every file under a version directory, sorted."""
    rows: list[tuple[str, int, int]] = []
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:
                continue
            rows.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(rows))


def needs_load(entry: VersionEntry | None) -> bool:
    """Whether an aspired version gets a (new) load on this poll.

    New versions, unloaded versions aspired again, and failed versions that were dropped
    from the aspired set in between load (TF Serving forgets an un-aspired kError servable
    and loads it afresh when it returns). A failed version still aspired is loaded again
    only when its files changed since the failed load (a directory that was incomplete).
    """
    if entry is None:
        return True
    if entry.state != END:
        return False
    if entry.error is None or not entry.aspired:
        return True
    return entry.fingerprint is not None and dir_fingerprint(entry.path) != entry.fingerprint


def next_action(
    versions: Mapping[int, VersionEntry], aspired: set[int], pinned: frozenset[int]
) -> Action | None:
    """AvailabilityPreservingPolicy::GetNextAction over one model's versions.

    `pinned` are the versions named by a `specific` policy, which are never unloaded here.
    """
    aspired_ready = any(versions[v].state == AVAILABLE for v in aspired if v in versions)
    stale = sorted(v for v, e in versions.items() if v not in aspired and e.state == AVAILABLE)
    if stale and (not aspired or aspired_ready or len(stale) > 1) and stale[0] not in pinned:
        return "unload", stale[0]
    new = [v for v in aspired if v in versions and versions[v].state == START]
    if new:
        return "load", max(new)
    return None
