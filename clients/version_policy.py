"""TF Serving's version policy, once: what is a version, which serve, which may go.

Used by the gateway's in-process host (`clients.inprocess`) and by the TF-Serving-compatible
backend (`tfserving_compat.versions`), so both follow the same rules:

* a version is a digit-named directory under the base path (`list_versions`,
  FileSystemStoragePathSource);
* the model's policy picks the versions that should serve (`select_versions`: latest N,
  all, specific);
* a version whose load failed is tried again only once its directory changed
  (`fingerprint`), so a half-copied directory recovers when the copy completes;
* a serving version the policy no longer selects goes only when that keeps the model
  available (`retirable`, AvailabilityPreservingPolicy).

Standard library only (and `clients.types`): the backend process imports it without the
gateway's dependencies.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path

from clients.types import VersionPolicy

_INT64_MAX = 2**63 - 1

Fingerprint = tuple[str, tuple[tuple[str, int, int], ...]]
"""Where a version directory really is, and (relative path, size, mtime in ns) of its entries."""


def list_versions(base_path: str | os.PathLike[str]) -> dict[int, Path]:
    """Version number -> directory for every digit-named subdirectory of `base_path`.

    Leading zeros are allowed ("007" is version 7); when two names give the same number the
    first in sorted order wins; numbers beyond int64 are ignored. Raises OSError when
    `base_path` cannot be listed.
    """
    found: dict[int, Path] = {}
    for name in sorted(os.listdir(base_path)):
        path = Path(base_path, name)
        if name.isascii() and name.isdigit() and path.is_dir():
            number = int(name)
            if number <= _INT64_MAX:
                found.setdefault(number, path)
    return found


def select_versions(policy: VersionPolicy, available: Collection[int]) -> list[int]:
    """The versions `policy` serves out of `available`, ascending."""
    if policy.kind == "all":
        return sorted(available)
    if policy.kind == "specific":
        return sorted(set(policy.versions) & set(available))
    return sorted(available)[-policy.num_versions :] if policy.num_versions > 0 else []


def fingerprint(version_dir: str | os.PathLike[str]) -> Fingerprint:
    """What `version_dir` resolves to, and the size and mtime of everything under it.

    Symbolic links are followed (a link whose target changed is a change); a dangling one
    counts with its own size and mtime. Entries that vanish while walking are skipped.
    """
    entries: list[tuple[str, int, int]] = []
    for root, dirs, files in os.walk(version_dir):
        for name in dirs + files:
            path = os.path.join(root, name)
            try:
                stat = os.stat(path) if os.path.exists(path) else os.lstat(path)
            except OSError:
                continue
            entries.append((os.path.relpath(path, version_dir), stat.st_size, stat.st_mtime_ns))
    return os.path.realpath(version_dir), tuple(sorted(entries))


def retirable(
    unselected_serving: Sequence[int], *, any_selected: bool, selected_available: bool
) -> list[int]:
    """Which serving versions the policy no longer selects may stop serving now, oldest first.

    AvailabilityPreservingPolicy: all of them when nothing is selected or a selected version
    is AVAILABLE; otherwise all but the newest, which keeps the model available until a
    selected version is (a broken new version never takes the model down).
    """
    stale = sorted(unselected_serving)
    if not any_selected or selected_available:
        return stale
    return stale[:-1]
