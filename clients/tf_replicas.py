"""What every replica of a TF Serving target has, kept current in the background.

A `ReplicaMonitor` resolves the target (`clients.tf_targets`), and every `poll_seconds`
asks each replica, over a channel of its own, for the status of every model the gateway
serves from it. Readiness, `GET /backends` and the replica metrics read the last view,
so a probe never waits on a backend. Every `dns_refresh_seconds` it resolves the target
again; when the set of addresses changed it renews the balanced channel, so replicas an
autoscaler added get calls (gRPC itself re-resolves only when a connection breaks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import grpc

from clients import metrics, tf_proto
from clients.protos import get_model_status_pb2, model_pb2, model_service_pb2_grpc
from clients.replica_view import ReplicaView, TargetView
from clients.tf_channel import replica_channel_options
from clients.tf_targets import TargetError, resolve_replicas
from clients.types import VersionStatus

logger = logging.getLogger(__name__)

# Told the new addresses; True once the calls use them, False to be told again next time.
OnAddressesChanged = Callable[[tuple[str, ...]], Awaitable[bool]]


class ReplicaMonitor:
    """Polls every replica of `target` for the status of `models`, in the background."""

    def __init__(
        self,
        target: str,
        models: Sequence[str],
        *,
        poll_seconds: float = 1.0,
        dns_refresh_seconds: float = 30.0,
        on_addresses_changed: OnAddressesChanged | None = None,
    ) -> None:
        self.target = target
        self._models = list(models)
        self._poll_seconds = poll_seconds
        self._dns_refresh_seconds = dns_refresh_seconds
        self._on_addresses_changed = on_addresses_changed
        self._call_timeout = min(max(poll_seconds, 0.2), 1.0)
        self.view = TargetView(target)
        self._addresses: tuple[str, ...] | None = None
        self._resolved_at = -float("inf")
        self._change_pending = False
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start polling (needs a running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop polling and close the replicas' channels."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()
        metrics.forget_replicas(self.target)

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # a bug here must not stop the monitor for good
                logger.exception("polling the replicas of %s failed", self.target)
            await asyncio.sleep(self._poll_seconds)

    async def poll_once(self) -> None:
        """Resolve the target when due, then ask every replica for its models' status."""
        error = ""
        now = time.monotonic()
        due = (
            self._addresses is None
            or self._change_pending
            or (0 < self._dns_refresh_seconds <= now - self._resolved_at)
        )
        if due:
            try:
                addresses = await resolve_replicas(self.target)
            except TargetError as failure:
                error = str(failure)
            else:
                self._resolved_at = now
                await self._use_addresses(addresses)
        addresses = self._addresses or ()
        replicas = await asyncio.gather(*(self._check(address) for address in addresses))
        self.view = TargetView(self.target, tuple(replicas), checked=True, error=error)
        metrics.record_replicas(self.target, self.view.replicas, self._models)

    async def _use_addresses(self, addresses: tuple[str, ...]) -> None:
        previous, self._addresses = self._addresses, addresses
        for gone in set(self._channels) - set(addresses):
            await self._channels.pop(gone).close(grace=None)
        if previous is None or (previous == addresses and not self._change_pending):
            return
        if previous != addresses:
            logger.info(
                "TF Serving target %s now has %d replicas (was %d)",
                self.target,
                len(addresses),
                len(previous),
            )
        if self._on_addresses_changed is not None:
            self._change_pending = not await self._on_addresses_changed(addresses)

    async def _check(self, address: str) -> ReplicaView:
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.insecure_channel(address, options=replica_channel_options())
            self._channels[address] = channel
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        models: dict[str, tuple[VersionStatus, ...]] = {}
        for name in self._models:
            request = get_model_status_pb2.GetModelStatusRequest(
                model_spec=model_pb2.ModelSpec(name=name)
            )
            try:
                response = await stub.GetModelStatus(request, timeout=self._call_timeout)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:  # reachable; no such model
                    models[name] = ()
                    continue
                return ReplicaView(address, reachable=False, error=_why(error))
            models[name] = tuple(tf_proto.version_statuses(response))
        return ReplicaView(address, reachable=True, models=models)


def _why(error: grpc.aio.AioRpcError) -> str:
    if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "no answer in time (hung or overloaded)"
    if error.code() == grpc.StatusCode.UNAVAILABLE:
        return "not reachable (refused, reset or not listening)"
    return f"status call failed ({error.code().name})"
