"""Prometheus metrics that the backends record (the HTTP layer keeps its own).

Labels are bounded by configuration: `model` is always a configured model name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Protocol

from prometheus_client import Counter, Gauge

MODEL_LOADS = Counter(
    "gateway_model_loads_total",
    "Model version loads attempted by in-process backends, by outcome (loaded, failed)",
    ["model", "outcome"],
)
MODEL_UNLOADS = Counter(
    "gateway_model_unloads_total", "Model versions retired by in-process backends", ["model"]
)

# Replicas of TF Serving targets, as the background monitor last saw them. `target` is a
# configured target and `replica` one of at most tf_targets.MAX_REPLICAS addresses each.
REPLICA_UP = Gauge(
    "gateway_tf_replica_up",
    "1 when the TF Serving replica answered the last status poll, else 0",
    ["target", "replica"],
    multiprocess_mode="max",
)
REPLICA_LATEST_VERSION = Gauge(
    "gateway_tf_replica_model_version",
    "Newest AVAILABLE version of the model on the replica (0: none); replicas that "
    "disagree show a rollout in progress",
    ["target", "replica", "model"],
    multiprocess_mode="max",
)
_replica_labels: dict[str, set[tuple[str, ...]]] = {}


class _ReplicaLike(Protocol):
    @property
    def address(self) -> str: ...

    @property
    def reachable(self) -> bool: ...

    def available_versions(self, name: str) -> list[int]: ...


def record_replicas(target: str, replicas: Sequence[_ReplicaLike], models: Sequence[str]) -> None:
    """Set the replica gauges of `target` from a poll; drop replicas that are gone."""
    seen: set[tuple[str, ...]] = set()
    for replica in replicas:
        REPLICA_UP.labels(target, replica.address).set(1 if replica.reachable else 0)
        seen.add((target, replica.address))
        for model in models:
            versions = replica.available_versions(model)
            REPLICA_LATEST_VERSION.labels(target, replica.address, model).set(
                versions[0] if versions else 0
            )
            seen.add((target, replica.address, model))
    _drop(_replica_labels.get(target, set()) - seen)
    _replica_labels[target] = seen


def forget_replicas(target: str) -> None:
    """Remove every replica gauge of `target` (its backend closed)."""
    _drop(_replica_labels.pop(target, set()))


def _drop(label_sets: set[tuple[str, ...]]) -> None:
    for labels in label_sets:
        gauge = REPLICA_UP if len(labels) == 2 else REPLICA_LATEST_VERSION
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)
