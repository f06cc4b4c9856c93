"""What the gateway knows of a replicated backend's replicas: plain data, no I/O.

Filled in by `clients.tf_replicas.ReplicaMonitor`; read by readiness, `GET /backends` and
the metrics. Kept free of gRPC so the core and the routers can use it without loading
TensorFlow Serving's protos.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from clients.types import ModelState, VersionStatus, why_unavailable


@dataclass(frozen=True)
class ReplicaView:
    """One replica as the last poll saw it."""

    address: str  # a target naming just this replica, e.g. "ipv4:10.0.0.1:8500"
    reachable: bool
    error: str = ""  # why it is not reachable
    # model name -> its versions, newest first; a model the replica does not serve maps to ()
    models: Mapping[str, tuple[VersionStatus, ...]] = field(default_factory=dict)

    def available_versions(self, name: str) -> list[int]:
        """Versions of `name` this replica serves, newest first."""
        return [s.version for s in self.models.get(name, ()) if s.state == ModelState.AVAILABLE]


@dataclass(frozen=True)
class TargetView:
    """Every replica of a target; `checked` is False until the first poll ended."""

    target: str
    replicas: tuple[ReplicaView, ...] = ()
    checked: bool = False
    error: str = ""  # the target did not resolve

    @property
    def any_reachable(self) -> bool:
        """Whether the last poll reached at least one replica."""
        return any(replica.reachable for replica in self.replicas)

    def why_unready(self, name: str) -> str | None:
        """None when some replica has an AVAILABLE version of `name`, else why not."""
        if any(replica.available_versions(name) for replica in self.replicas):
            return None
        if not self.checked:
            return "the TensorFlow Serving backend has not been checked yet (starting)"
        if self.error:
            return f"the TensorFlow Serving backend cannot be resolved: {self.error}"
        if not self.any_reachable:
            return "no TensorFlow Serving replica is reachable"
        reachable = [replica for replica in self.replicas if replica.reachable]
        return why_unavailable([s for replica in reachable for s in replica.models.get(name, ())])
