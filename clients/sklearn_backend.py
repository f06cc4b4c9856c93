"""The scikit-learn backend: the in-process host with the scikit-learn loader.

Each version directory holds an estimator saved by `save_model`
(`base_path/<version>/model.skops|model.joblib`, see `clients.sklearn_artifacts`);
`SklearnLoader` loads it defensively and derives its signatures (`clients.sklearn_model`).
Everything else (version policy, swaps, the pool, batching) is `clients.inprocess`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from clients.inprocess.batching import BatchingOptions
from clients.inprocess.host import InProcessBackend
from clients.inprocess.loader import Phase
from clients.inprocess.tracking import scan_versions
from clients.sklearn_artifacts import LoadOptions, is_trusted_type, load_artifact, save_model
from clients.sklearn_errors import to_serving_error
from clients.sklearn_model import LoadedModel
from clients.types import ModelSource, ServingError
from clients.version_policy import select_versions

__all__ = [
    "SklearnBackend",
    "SklearnLoader",
    "is_trusted_type",
    "load_artifact",
    "save_model",
    "scan_versions",
    "select_versions",
]


class SklearnLoader:
    """A `ModelLoader` for estimators saved with `save_model`."""

    library = "scikit-learn"

    def __init__(self, extra_trusted_types: Collection[str] = ()) -> None:
        """`extra_trusted_types`: skops type names to trust beyond `is_trusted_type`'s policy."""
        self._extra_trusted = frozenset(extra_trusted_types)

    def load(self, source: ModelSource, number: int, version_dir: Path) -> LoadedModel:
        """Load and prepare one version (blocking: the host runs it in its thread pool)."""
        options = LoadOptions(
            base_path=Path(source.base_path),
            allow_pickle=source.allow_pickle,
            sha256=source.sha256.get(number),
            extra_trusted=self._extra_trusted,
            describe=f"{source.name} version {number}",
        )
        return LoadedModel.build(source.name, number, load_artifact(version_dir, options))

    def to_serving_error(self, exc: BaseException, phase: Phase) -> ServingError:
        """scikit-learn's, numpy's and the OS's exceptions as `ServingError`."""
        return to_serving_error(exc, phase)


class SklearnBackend(InProcessBackend):
    """A `ModelBackend` serving scikit-learn estimators saved with `save_model`."""

    def __init__(
        self,
        models: Sequence[ModelSource],
        *,
        max_workers: int = 4,
        extra_trusted_types: Collection[str] = (),
        poll_seconds: float = 0,
        batching: BatchingOptions = BatchingOptions(),  # noqa: B008 (frozen, so shareable)
    ) -> None:
        """See `InProcessBackend`; `extra_trusted_types` as `SklearnLoader` takes them."""
        super().__init__(
            SklearnLoader(extra_trusted_types),
            models,
            max_workers=max_workers,
            poll_seconds=poll_seconds,
            batching=batching,
        )
