"""Version discovery and the version policy, without locks or TensorFlow.

The rules themselves are `clients.version_policy`, shared with the gateway's in-process
host; this module applies them to the server's `VersionEntry` bookkeeping:
- `list_versions` is FileSystemStoragePathSource: every all-digit directory is a version;
- `aspired_versions` applies the model's version policy (latest N, all, specific);
- `next_action` is AvailabilityPreservingPolicy::GetNextAction
  (tensorflow_serving/core/availability_preserving_policy.cc): unload before load, never
  drop the last serving version until an aspired one is ready, load the highest new one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from clients import version_policy
from clients.types import VersionPolicy
from clients.version_policy import Fingerprint
from tfserving_compat.config import ModelConfig
from tfserving_compat.errors import ServingError
from tfserving_compat.loader import LoadedVersion

_LOG = logging.getLogger(__name__)

# Values of tensorflow.serving.ModelVersionStatus.State (get_model_status.proto).
START, LOADING, AVAILABLE, UNLOADING, END = 10, 20, 30, 40, 50

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
        found = version_policy.list_versions(base_path)
    except OSError as exc:
        _LOG.warning("Could not list base path %s: %s", base_path, exc)
        return None
    if not found:
        _LOG.warning("No versions of servable found under base path %s", base_path)
    return {version: str(path) for version, path in found.items()}


def aspired_versions(config: ModelConfig, found: Mapping[int, str]) -> set[int]:
    """The versions the model's version policy wants served, among those on disk."""
    policy = VersionPolicy(
        kind=config.policy,
        num_versions=config.num_latest,
        versions=tuple(sorted(config.specific_versions)),
    )
    return set(version_policy.select_versions(policy, found))


def dir_fingerprint(path: str) -> Fingerprint:
    """`clients.version_policy.fingerprint` of a version directory."""
    return version_policy.fingerprint(path)


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
    stale = [v for v, e in versions.items() if v not in aspired and e.state == AVAILABLE]
    going = version_policy.retirable(
        stale, any_selected=bool(aspired), selected_available=aspired_ready
    )
    if going and going[0] not in pinned:
        return "unload", going[0]
    new = [v for v in aspired if v in versions and versions[v].state == START]
    if new:
        return "load", max(new)
    return None
