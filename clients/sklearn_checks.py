"""The safety checks an artifact passes before it is loaded: trust, place, digest, versions.

* skops files may only name trusted types (`is_trusted_type`);
* files must resolve inside the model's base path (`confine`), symlinks included;
* pickles (joblib) need the model's `allow_pickle` (`pickle_refused` says why and how);
* a configured SHA-256 must match the bytes that get loaded (`check_digest`);
* the library versions recorded at save time must match the running ones (`check_saved_with`).
"""

from __future__ import annotations

import builtins
import hashlib
import platform
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import sklearn

from clients.types import Code, ServingError

# Modules whose types and functions a skops file may name. Everything else (third-party
# code, `functools.partial`, `os.system`, ...) is refused unless listed explicitly.
TRUSTED_MODULE_PREFIXES = ("sklearn.", "numpy.", "scipy.")

# How many leading version components must equal the running library's for a version to load.
# scikit-learn supports loading an estimator only with the release that saved it (minor
# releases change estimator internals; patch releases do not); numpy majors change the
# pickled layout. Python is recorded and shown in metadata, not enforced.
MUST_MATCH: Mapping[str, int] = {"sklearn": 2, "numpy": 1}
_LIBRARY_NAMES = {"sklearn": "scikit-learn", "numpy": "numpy", "python": "Python"}
_RELEASE = re.compile(r"^(\d+(?:\.\d+)*)")


def running_versions() -> dict[str, str]:
    """The scikit-learn, numpy and Python versions of this process."""
    return {
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def is_trusted_type(qualified_name: str) -> bool:
    """The skops trust policy: may a file that names `qualified_name` be loaded?

    Trusted: anything under `sklearn.`, `numpy.` or `scipy.`, and builtins that are
    classes (`builtins.slice`), never builtin functions (`builtins.eval`, `builtins.open`).
    skops's own default list is trusted as well (skops never reports those as untrusted).
    """
    if qualified_name.startswith(TRUSTED_MODULE_PREFIXES):
        return True
    module, _, name = qualified_name.rpartition(".")
    return module == "builtins" and isinstance(getattr(builtins, name, None), type)


def confine(path: Path, base: Path, what: str) -> Path:
    """`path` resolved, if it stays inside `base` (resolved already); else PERMISSION_DENIED."""
    resolved = path.resolve()
    if not resolved.is_relative_to(base):
        raise ServingError(
            Code.PERMISSION_DENIED,
            f"{what} resolves outside the model's base_path (a symlink?); artifacts are "
            "only loaded from inside base_path",
        )
    return resolved


def pickle_refused(filename: str, describe: str) -> ServingError:
    """The error for a pickle artifact of a model without `allow_pickle`."""
    return ServingError(
        Code.FAILED_PRECONDITION,
        f"{filename} is a pickle, and unpickling runs whatever code the file holds, so "
        f"{describe} is refused: allow_pickle is off for this model. If you trust whoever "
        "wrote the file, set `allow_pickle: true` on the model in the gateway config "
        "(and pin the file with `sha256: {<version>: <hex digest>}`), or re-save the "
        "estimator with skops as model.skops, which loads without running code",
    )


def check_digest(data: bytes, expected: str, filename: str) -> None:
    """Raise FAILED_PRECONDITION unless `data` has the SHA-256 hex digest `expected`."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.lower():
        raise ServingError(
            Code.FAILED_PRECONDITION,
            f"{filename} has SHA-256 {actual} but the configured sha256 for this version is "
            f"{expected.lower()}; refusing to load it",
        )


def check_saved_with(saved_with: Mapping[str, str], describe: str = "this version") -> None:
    """Raise FAILED_PRECONDITION if a library's version differs from the running one.

    Only the leading components in `MUST_MATCH` count (scikit-learn 1.4.0 vs 1.4.2 is fine);
    versions that do not start with numbers are not compared.
    """
    running = running_versions()
    for library, parts in MUST_MATCH.items():
        saved, now = saved_with.get(library), running[library]
        saved_key, now_key = _release(saved, parts), _release(now, parts)
        if saved_key is None or now_key is None or saved_key == now_key:
            continue
        pretty = _LIBRARY_NAMES[library]
        raise ServingError(
            Code.FAILED_PRECONDITION,
            f"{describe} was saved with {pretty} {saved} but {now} is running; re-save it "
            f"with {pretty} {now_key} (python -m gateway build-examples for the examples) "
            f"or run {pretty} {saved_key}",
        )


def _release(version: str | None, parts: int) -> str | None:
    """The first `parts` numeric components of `version` ("1.4.2.post1", 2 -> "1.4")."""
    match = _RELEASE.match(version or "")
    numbers = match.group(1).split(".") if match else []
    return ".".join(numbers[:parts]) if len(numbers) >= parts else None
