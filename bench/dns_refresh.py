"""How soon a replica added behind a DNS name gets calls, for each way of re-resolving.

gRPC resolves a `dns:` target when a channel starts and again only when a connection
breaks, so a replica an autoscaler adds behind a name that already resolved gets nothing.
This script measures the options on real processes: four `tfserving_compat` replicas of
half_plus_two on 127.0.0.2-5 (one port), a DNS server on loopback (dnslib) that first
lists three of them and then, mid-run, the fourth, and 8 concurrent Predict callers:

- `plain`: a round_robin channel, nothing else (the baseline);
- `resolver-setting`: the same with `grpc.dns_min_time_between_resolutions_ms` = 1 s (it
  only limits how often gRPC may re-resolve; nothing asks it to);
- `server-max-age`: the replicas run with TF Serving's
  `--grpc_channel_arguments=grpc.max_connection_age_ms=...`, so every connection is
  closed (GOAWAY) after that age and the client asks to re-resolve (gRPC's DNS resolver
  then waits until 30 s have passed since its last resolution);
- `server-max-age+resolver`: both of the above;
- `gateway`: the gateway's TfServingBackend, whose replica monitor resolves the name every
  `tf_dns_refresh_seconds` and renews the channel when the address set changed.

For each: seconds from the DNS change to the first call answered by the new replica,
failed calls, p99 latency of the window, and reconnects (new connections the replicas
accepted, from channelz of this process: subchannel connects).

    python3 bench/dns_refresh.py [--interval 10] [--duration 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import grpc
from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSServer
from grpc._cython import cygrpc

BENCH_DIR = Path(__file__).resolve().parent
IPS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
CALLERS = 8


class Zone(BaseResolver):  # type: ignore[misc]
    """`tfs.test` -> the current `addresses` (A records, TTL 1 s)."""

    def __init__(self) -> None:
        self.addresses: list[str] = []

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        """Answer A queries for tfs.test; everything else is empty."""
        reply = request.reply()
        if str(request.q.qname).rstrip(".") == "tfs.test" and request.q.qtype == QTYPE.A:
            for address in self.addresses:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=1))
        return reply


def free_port() -> int:
    """A port free on every replica address."""
    while True:
        with socket.socket() as probe:
            probe.bind((IPS[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for ip in IPS[1:]:
                with socket.socket() as other:
                    other.bind((ip, port))
        except OSError:
            continue
        return port


def start_replicas(
    base_path: Path, port: int, channel_arguments: str
) -> list[subprocess.Popen[bytes]]:
    """Four replicas; returns once every one listens."""
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tfserving_compat",
                f"--host={ip}",
                f"--port={port}",
                "--model_name=half_plus_two",
                f"--model_base_path={base_path}",
                "--file_system_poll_wait_seconds=0",
                f"--grpc_channel_arguments={channel_arguments}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for ip in IPS
    ]
    for ip in IPS:
        deadline = time.monotonic() + 180
        while True:
            try:
                socket.create_connection((ip, port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica {ip} did not start") from None
                time.sleep(0.2)
    return processes


def subchannel_stats(target: str) -> dict[str, dict[str, Any]]:
    """Per replica address: calls succeeded and connects, over every channel of `target`."""
    stats: dict[str, dict[str, Any]] = {}
    page = json.loads(cygrpc.channelz_get_top_channels(0))
    for channel in page.get("channel", []):
        if channel["data"]["target"] != target:
            continue
        for ref in channel.get("subchannelRef", []):
            sub = json.loads(cygrpc.channelz_get_subchannel(int(ref["subchannelId"])))["subchannel"]
            events = sub["data"].get("trace", {}).get("events", [])
            entry = stats.setdefault(sub["data"]["target"], {"calls": 0, "connects": 0})
            entry["calls"] += int(sub["data"].get("callsSucceeded", 0))
            entry["connects"] += sum("to READY" in event["description"] for event in events)
    return stats


Caller = Callable[[], Awaitable[object]]


async def drive(
    call: Caller, target: str, zone: Zone, new_address: str, duration: float
) -> dict[str, Any]:
    """Run CALLERS loops of `call`; add the fourth replica to DNS after 3 s."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + duration
    changed_at: float | None = None
    first_new: float | None = None

    async def caller() -> None:
        nonlocal errors
        while time.monotonic() < stop_at:
            started = time.monotonic()
            try:
                await call()
            except Exception:  # every failure counts, whatever its type
                errors += 1
            latencies.append(time.monotonic() - started)

    async def watch() -> None:
        nonlocal changed_at, first_new
        await asyncio.sleep(3)
        zone.addresses.append(IPS[3])
        changed_at = time.monotonic()
        while time.monotonic() < stop_at and first_new is None:
            if subchannel_stats(target).get(new_address, {}).get("calls", 0) > 0:
                first_new = time.monotonic()
            await asyncio.sleep(0.05)

    await asyncio.gather(watch(), *(caller() for _ in range(CALLERS)))
    latencies.sort()
    stats = subchannel_stats(target)
    return {
        "seconds_to_first_call": None
        if first_new is None or changed_at is None
        else round(first_new - changed_at, 2),
        "calls": len(latencies),
        "errors": errors,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "connects": sum(entry["connects"] for entry in stats.values()),
        "new_replica_calls": stats.get(new_address, {}).get("calls", 0),
    }


async def run_option(
    name: str, base_path: Path, interval: float, duration: float
) -> dict[str, Any]:
    """Start replicas and DNS for one option, drive it, stop everything."""
    from clients.context import CALL_CONTEXT, CallContext
    from clients.tf_serving import TfServingBackend
    from clients.types import ModelSpec

    port = free_port()
    max_age = (
        f"grpc.max_connection_age_ms={int(interval * 1000)}" if name == "server-max-age" else ""
    )
    processes = start_replicas(base_path, port, max_age)
    zone = Zone()
    zone.addresses[:] = list(IPS[:3])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        dns_port = int(probe.getsockname()[1])
    dns = [DNSServer(zone, port=dns_port, address="127.0.0.1", tcp=tcp) for tcp in (False, True)]
    for server in dns:
        server.start_thread()
    target = f"dns://127.0.0.1:{dns_port}/tfs.test:{port}"
    new_address = f"ipv4:{IPS[3]}:{port}"
    try:
        if name == "gateway":
            backend = TfServingBackend(
                target, ["half_plus_two"], dns_refresh_seconds=interval, status_poll_seconds=1
            )
            await backend.start()
            spec = ModelSpec("half_plus_two", signature_name="serving_default")
            import numpy as np

            inputs = {"x": np.array([[1.0]], dtype=np.float32)}
            CALL_CONTEXT.set(CallContext(deadline=None))

            async def call() -> object:
                return await backend.predict(spec, inputs)

            try:
                return await drive(call, target, zone, new_address, duration)
            finally:
                await backend.close()
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        sys.path.insert(0, str(BENCH_DIR))
        from grpc_load import predict_request

        options: list[tuple[str, Any]] = [
            ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]}))
        ]
        if name in ("resolver-setting", "server-max-age+resolver"):
            options.append(("grpc.dns_min_time_between_resolutions_ms", 1000))
        channel = grpc.aio.insecure_channel(target, options=options)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_request("half_plus_two")

        async def plain_call() -> object:
            return await stub.Predict(request, timeout=10)

        try:
            return await drive(plain_call, target, zone, new_address, duration)
        finally:
            await channel.close()
    finally:
        for server in dns:
            server.stop()
        for process in processes:
            process.kill()
            process.wait()


async def main() -> None:
    """Measure every option once and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=10.0, help="refresh / max age, s")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per option")
    parser.add_argument(
        "--options", default="plain,resolver-setting,server-max-age,server-max-age+resolver,gateway"
    )
    args = parser.parse_args()
    from examples.tf_models import build_half_plus_two

    with tempfile.TemporaryDirectory() as models:
        build_half_plus_two(Path(models))
        base_path = Path(models) / "half_plus_two"
        print(f"interval {args.interval:g} s, {args.duration:g} s per option, {CALLERS} callers")
        print(
            "| option | s to first call on the new replica | calls | errors | p99 ms | connects |"
        )
        print("|---|--:|--:|--:|--:|--:|")
        for name in args.options.split(","):
            result = await run_option(name, base_path, args.interval, args.duration)
            first = result["seconds_to_first_call"]
            print(
                f"| {name} | {'never' if first is None else first} | {result['calls']} | "
                f"{result['errors']} | {result['p99_ms']} | {result['connects']} |",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
