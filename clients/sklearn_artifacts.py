"""Saving and loading scikit-learn model versions: `model.skops` or `model.joblib`, `metadata.json`.

A version directory holds one artifact and an optional sidecar written by `save_model`:

    <base_path>/<version>/model.skops     preferred: skops loads it without running code
    <base_path>/<version>/model.joblib    a pickle: loads only with `allow_pickle`
    <base_path>/<version>/metadata.json   {"format", "estimator", "saved_with", "feature_names"}

Loading is defensive (see `LoadOptions`): files must resolve inside the model's base path,
pickles need `allow_pickle`, a configured SHA-256 is checked on the bytes that get loaded,
and `saved_with` (the scikit-learn, numpy and Python versions at save time) must match the
running scikit-learn's major.minor and numpy's major version (`check_saved_with`).
"""

from __future__ import annotations

import io
import json
import threading
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import joblib
import skops.io as sio
from sklearn.exceptions import InconsistentVersionWarning

from clients.sklearn_checks import (
    check_digest,
    check_saved_with,
    confine,
    is_trusted_type,
    pickle_refused,
    running_versions,
)
from clients.sklearn_errors import to_serving_error
from clients.types import Code, ServingError

__all__ = [
    "Artifact",
    "Format",
    "LoadOptions",
    "is_trusted_type",
    "load_artifact",
    "running_versions",
    "save_model",
]

Format = Literal["skops", "joblib"]

SKOPS_FILE = "model.skops"
JOBLIB_FILE = "model.joblib"
SIDECAR_FILE = "metadata.json"
_ARTIFACT_FILES: tuple[tuple[Format, str], ...] = (("skops", SKOPS_FILE), ("joblib", JOBLIB_FILE))

NO_SIDECAR_WARNING = (
    f"no {SIDECAR_FILE} with 'saved_with': the library versions this artifact was saved with "
    "are unknown, so they were not checked; save it with clients.sklearn_artifacts.save_model "
    "to record them"
)

# `warnings.catch_warnings` changes process-wide state: loads that record warnings take turns.
_WARNINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Artifact:
    """A loaded estimator and what is known about how it was saved."""

    estimator: Any
    fmt: Format
    saved_with: Mapping[str, str] | None
    feature_names: tuple[str, ...] | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadOptions:
    """What a version may load. `describe` names it in errors ("iris version 1")."""

    base_path: Path | None = None  # files must resolve inside it; None = the version's parent
    allow_pickle: bool = False
    sha256: str | None = None  # expected hex digest of the artifact file
    extra_trusted: Collection[str] = ()
    describe: str = "this version"


def save_model(
    estimator: Any,
    version_dir: Path,
    *,
    fmt: Format = "skops",
    feature_names: Sequence[str] | None = None,
) -> Path:
    """Write `estimator` and its `metadata.json` into `version_dir`; return the artifact's path."""
    files = dict(_ARTIFACT_FILES)
    if fmt not in files:
        raise ValueError(f"unknown format {fmt!r}: expected 'skops' or 'joblib'")
    names = _checked_feature_names(estimator, feature_names)
    version_dir.mkdir(parents=True, exist_ok=True)
    for filename in files.values():  # an older artifact in the other format would win
        (version_dir / filename).unlink(missing_ok=True)
    path = version_dir / files[fmt]
    if fmt == "skops":
        sio.dump(estimator, path)
    else:
        joblib.dump(estimator, path)
    sidecar = {
        "format": fmt,
        "estimator": type(estimator).__name__,
        "saved_with": running_versions(),
        "feature_names": names,
    }
    (version_dir / SIDECAR_FILE).write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


def _checked_feature_names(estimator: Any, names: Sequence[str] | None) -> list[str] | None:
    if names is None:
        return None
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is not None and len(names) != n_features:
        raise ValueError(f"{len(names)} feature names for an estimator of {n_features} features")
    if len(set(names)) != len(names):
        raise ValueError("feature names must be unique")
    return [str(name) for name in names]


def load_artifact(version_dir: Path, options: LoadOptions | None = None) -> Artifact:
    """Load the estimator of one version directory; raise `ServingError` saying what is wrong.

    Nothing is deserialized before every check that can be made without it has passed.
    """
    opts = options or LoadOptions()
    base = (opts.base_path or version_dir.parent).resolve()
    confine(version_dir, base, f"version directory {version_dir.name!r}")
    sidecar = _read_sidecar(version_dir, base)
    saved_with = sidecar.get("saved_with") if sidecar else None
    if saved_with is not None:
        check_saved_with(saved_with, opts.describe)
    fmt, filename = _find_artifact(version_dir)
    if fmt == "joblib" and not opts.allow_pickle:
        raise pickle_refused(filename, opts.describe)
    data = confine(version_dir / filename, base, filename).read_bytes()
    if opts.sha256 is not None:
        check_digest(data, opts.sha256, filename)
    try:
        estimator, warned_version = _load_recording_version(data, fmt, opts.extra_trusted)
    except Exception as exc:
        error = to_serving_error(exc, "load")
        raise ServingError(error.code, f"{filename}: {error.message}") from exc
    _check_is_estimator(estimator, filename)
    notes: tuple[str, ...] = ()
    if saved_with is None:
        notes = (NO_SIDECAR_WARNING,)
        if warned_version is not None:
            saved_with = {"sklearn": warned_version}
            check_saved_with(saved_with, opts.describe)
    names = sidecar.get("feature_names") if sidecar else None
    feature_names = tuple(names) if names is not None else None
    return Artifact(estimator, fmt, saved_with, feature_names, notes)


def _find_artifact(version_dir: Path) -> tuple[Format, str]:
    for fmt, filename in _ARTIFACT_FILES:
        if (version_dir / filename).is_file():
            return fmt, filename
    raise ServingError(Code.NOT_FOUND, f"no {SKOPS_FILE} or {JOBLIB_FILE} in the version directory")


def _load_recording_version(
    data: bytes, fmt: Format, extra_trusted: Collection[str]
) -> tuple[Any, str | None]:
    """Load `data`; also return the sklearn version an InconsistentVersionWarning named, if any."""
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        if fmt == "skops":
            estimator = _load_skops(data, extra_trusted)
        else:
            estimator = joblib.load(io.BytesIO(data))
    versions = [
        w.message.original_sklearn_version
        for w in caught
        if isinstance(w.message, InconsistentVersionWarning)
    ]
    return estimator, (str(versions[0]) if versions else None)


def _load_skops(data: bytes, extra_trusted: Collection[str]) -> Any:
    untrusted = sio.get_untrusted_types(data=data)
    refused = sorted(t for t in untrusted if not (is_trusted_type(t) or t in extra_trusted))
    if refused:
        raise ServingError(
            Code.FAILED_PRECONDITION,
            f"refusing to load types that are not trusted: {', '.join(refused)} "
            "(trusted: sklearn.*, numpy.*, scipy.*, builtin classes, and types configured "
            "as extra trusted types)",
        )
    return sio.loads(data, trusted=list(untrusted))


def _check_is_estimator(obj: Any, filename: str) -> None:
    if not any(callable(getattr(obj, m, None)) for m in ("predict", "transform")):
        raise ServingError(
            Code.FAILED_PRECONDITION,
            f"{filename} holds a {type(obj).__name__}, not an estimator with predict or transform",
        )


def _read_sidecar(version_dir: Path, base: Path) -> dict[str, Any] | None:
    path = version_dir / SIDECAR_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(confine(path, base, SIDECAR_FILE).read_text())
    except (OSError, ValueError) as exc:
        error = to_serving_error(exc, "load")
        raise ServingError(Code.DATA_LOSS, f"{SIDECAR_FILE}: {error.message}") from exc
    if not _valid_sidecar(data):
        raise ServingError(
            Code.DATA_LOSS,
            f"{SIDECAR_FILE}: expected an object with 'saved_with' (strings) and "
            "'feature_names' (a list of strings or null)",
        )
    return dict(data)


def _valid_sidecar(data: object) -> bool:
    if not isinstance(data, dict):
        return False
    saved_with = data.get("saved_with")
    names = data.get("feature_names")
    return (
        saved_with is None
        or (isinstance(saved_with, dict) and all(isinstance(v, str) for v in saved_with.values()))
    ) and (names is None or (isinstance(names, list) and all(isinstance(n, str) for n in names)))
