"""The interface between the in-process host and a model library: load a version directory.

A `ModelLoader` turns one version directory into a `HostedVersion`, which describes its
signatures and offers the (blocking) calls the host runs in its pool. The `*_call` methods
give a batchable `RowCall` (cheap checks on the event loop) or None to run on its own;
`row_op` is the row-wise computation a batch of such calls shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from clients.base import Tensors
from clients.inprocess.batching import RowCall, RowOp
from clients.types import Classification, ExampleBatch, ModelMetadata, ModelSource, ServingError

Phase = Literal["load", "request"]


class HostedVersion(Protocol):
    """One loaded version of a model: its signatures and its calls (blocking, thread-safe)."""

    @property
    def name(self) -> str:
        """The model's name."""

    @property
    def version(self) -> int:
        """The version number."""

    def metadata(self) -> ModelMetadata:
        """This version's signatures and library details."""

    def predict(self, signature_name: str, inputs: Tensors) -> dict[str, np.ndarray]:
        """Run signature `signature_name` ("" = default) on `inputs`; outputs by alias."""

    def predict_call(
        self, signature_name: str, inputs: Tensors, max_rows: int
    ) -> RowCall[dict[str, np.ndarray]] | None:
        """`predict` as a batchable call, or None to run it on its own."""

    def classify(self, signature_name: str, batch: ExampleBatch) -> list[Classification]:
        """One classification per example."""

    def classify_call(
        self, signature_name: str, batch: ExampleBatch, max_rows: int
    ) -> RowCall[list[Classification]] | None:
        """`classify` as a batchable call, or None."""

    def regress(self, signature_name: str, batch: ExampleBatch) -> list[float]:
        """One value per example."""

    def regress_call(
        self, signature_name: str, batch: ExampleBatch, max_rows: int
    ) -> RowCall[list[float]] | None:
        """`regress` as a batchable call, or None."""

    def row_op(self, key: str) -> RowOp:
        """The row-wise computation behind `RowCall.key`."""


class ModelLoader(Protocol):
    """What a library gives the in-process host."""

    @property
    def library(self) -> str:
        """The library's name in messages ("scikit-learn")."""

    def load(self, source: ModelSource, number: int, version_dir: Path) -> HostedVersion:
        """Load version `number` of `source` from `version_dir` (blocking; in the pool)."""

    def to_serving_error(self, exc: BaseException, phase: Phase) -> ServingError:
        """The library's exception as a `ServingError` safe to show a caller."""
