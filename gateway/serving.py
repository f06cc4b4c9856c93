"""What every protocol's router serves with, built once per app in its lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.codec.limits import JsonLimits
from gateway.dataplane import DataPlane
from gateway.offload import Offloader


@dataclass(frozen=True)
class Serving:
    """The data plane, the codec's input limits and the offloader for big codec work."""

    dataplane: DataPlane
    limits: JsonLimits
    offloader: Offloader
