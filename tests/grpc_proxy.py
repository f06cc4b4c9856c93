"""A real gRPC proxy for fault tests: forwards every unary call's bytes to a server.

It records each call it receives (method and metadata), can answer the first
`fail_first` calls with UNAVAILABLE itself, and can start listening late (a server
that comes up while a client is already calling).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from clients.embedded import free_port

if TYPE_CHECKING:
    _Handler = grpc.GenericRpcHandler[bytes, bytes]
else:  # not subscriptable at run time
    _Handler = grpc.GenericRpcHandler


class GrpcProxy(_Handler):
    """Listens on a loopback port of its own; forwards to `upstream` once started."""

    def __init__(self, upstream: str, *, fail_first: int = 0) -> None:
        self.upstream = upstream
        self.fail_first = fail_first
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.target = f"127.0.0.1:{free_port()}"
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None

    async def start(self) -> None:
        """Open the upstream channel and start listening on `target`."""
        self._channel = grpc.aio.insecure_channel(self.upstream)
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((self,))
        self._server.add_insecure_port(self.target)
        await self._server.start()

    async def stop(self) -> None:
        """Stop listening and close the upstream channel."""
        if self._server is not None:
            await self._server.stop(None)
        if self._channel is not None:
            await self._channel.close(None)

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes] | None:
        """Every method: record, maybe fail, else forward the request bytes."""
        method: str = handler_call_details.method

        async def forward(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            self.calls.append(
                (method, {key: str(value) for key, value in context.invocation_metadata() or ()})
            )
            if len(self.calls) <= self.fail_first:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: not serving yet")
            assert self._channel is not None
            try:
                response: bytes = await self._channel.unary_unary(method, None, None)(
                    request, timeout=context.time_remaining()
                )
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "")
            return response

        return grpc.unary_unary_rpc_method_handler(forward)
