"""New SavedModel versions under load: swapped in with zero failed requests.

A real `python -m tfserving_compat` polls two base paths every second while a stream of
concurrent Predict RPCs (latest version) runs: a new version is loaded before it serves
and the old one is unloaded only after; a broken or incomplete version never serves and
shows its error in GetModelStatus while the previous version keeps answering.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tests.compat.conftest import Server, start_server, stop_server, wait_ready
from tests.compat.helpers import predict_request

State = get_model_status_pb2.ModelVersionStatus.State
X = [1.0, 2.0, 5.0]
EXPECTED = {"two": [2.5, 3.0, 4.5], "three": [3.5, 4.0, 5.5]}
DEADLINE_S = 60.0
WORKERS = 4

Row = tuple[int, str, int, str]


@dataclass
class Swap:
    """The server, the base paths of its two models, and half_plus_three to swap in."""

    server: Server
    bases: dict[str, Path]
    three: Path


@pytest.fixture(scope="module")
def swap(tmp_path_factory: pytest.TempPathFactory, tf_test_models: Path) -> Iterator[Swap]:
    """A server polling every second, models "swap" and "partial" at version 1 = half_plus_two."""
    two = tf_test_models / "half_plus_two" / "123"
    work = tmp_path_factory.mktemp("swap")
    bases = {name: work / name for name in ("swap", "partial")}
    entries = ""
    for name, base in bases.items():
        base.mkdir()
        shutil.copytree(two, base / "1")
        entries += f'config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }} '
    config = work / "models.config"
    config.write_text(f"model_config_list {{ {entries}}}\n")
    server = start_server(
        ["--model_config_file", str(config), "--file_system_poll_wait_seconds", "1"],
        work / "server.log",
    )
    try:
        wait_ready(server)
        yield Swap(server, bases, tf_test_models / "half_plus_three" / "123")
    finally:
        stop_server(server)


def move_into_place(staging: Path, base: Path, version: int) -> None:
    """What a writer should do: finish a version under a non-numeric name, then rename it."""
    os.rename(staging, base / str(version))


async def status(channel: grpc.aio.Channel, name: str) -> list[Row]:
    """GetModelStatus rows: (version, state, error code, error message), newest first."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    response = await stub.GetModelStatus(request, timeout=30)
    return [
        (s.version, State.Name(s.state), s.status.error_code, s.status.error_message)
        for s in response.model_version_status
    ]


async def wait_for_status(channel: grpc.aio.Channel, name: str, expected: list[Row]) -> None:
    """Polls GetModelStatus until it equals `expected` (bounded by DEADLINE_S)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    rows = await status(channel, name)
    while rows != expected and loop.time() < deadline:
        await asyncio.sleep(0.2)
        rows = await status(channel, name)
    assert rows == expected


@dataclass
class Load:
    """A stream of concurrent Predict calls on the latest version, and what came back."""

    channel: grpc.aio.Channel
    model: str
    served: list[tuple[int, list[float]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def worker(self) -> None:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        request = predict_request(self.model, X)
        while not self.stop.is_set():
            try:
                response = await stub.Predict(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                self.failures.append(f"{exc.code().name}: {exc.details()}")
                continue
            values = tf.make_ndarray(response.outputs["y"]).tolist()
            self.served.append((response.model_spec.version.value, values))

    async def until_served(self, version: int, count: int) -> None:
        """Waits until `count` more responses came from `version`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        target = sum(1 for v, _ in self.served if v == version) + count
        while sum(1 for v, _ in self.served if v == version) < target:
            assert loop.time() < deadline, f"fewer than {count} answers from version {version}"
            assert not self.failures, self.failures[:5]
            await asyncio.sleep(0.05)


async def test_swap_under_load_then_broken_version(swap: Swap) -> None:
    base = swap.bases["swap"]
    async with grpc.aio.insecure_channel(swap.server.address) as channel:
        load = Load(channel, "swap")
        workers = [asyncio.create_task(load.worker()) for _ in range(WORKERS)]
        try:
            await load.until_served(1, 20)

            # a good version 2 (half_plus_three), renamed into place while requests run
            shutil.copytree(swap.three, base / ".incoming-2")
            move_into_place(base / ".incoming-2", base, 2)
            await wait_for_status(channel, "swap", [(2, "AVAILABLE", 0, ""), (1, "END", 0, "")])
            await load.until_served(2, 20)

            # a broken version 3 (garbage saved_model.pb): version 2 keeps serving
            (base / ".incoming-3").mkdir()
            (base / ".incoming-3" / "saved_model.pb").write_bytes(bytes(range(256)) * 8)
            move_into_place(base / ".incoming-3", base, 3)
            broken = (
                3,
                "END",
                grpc.StatusCode.DATA_LOSS.value[0],
                f"Can't parse {base / '3' / 'saved_model.pb'} as binary proto",
            )
            await wait_for_status(
                channel, "swap", [broken, (2, "AVAILABLE", 0, ""), (1, "END", 0, "")]
            )
            await load.until_served(2, 20)
        finally:
            load.stop.set()
            await asyncio.gather(*workers)

    assert load.failures == []
    versions = [version for version, _ in load.served]
    assert set(versions) == {1, 2}
    # once version 2 answered, version 1 can only finish requests that started before it
    first_two = versions.index(2)
    assert versions.count(1) - versions[:first_two].count(1) <= WORKERS
    for version, values in load.served:
        expected = EXPECTED["two"] if version == 1 else EXPECTED["three"]
        np.testing.assert_allclose(values, expected)


async def test_incomplete_version_is_retried_once_complete(swap: Swap) -> None:
    base = swap.bases["partial"]
    async with grpc.aio.insecure_channel(swap.server.address) as channel:
        load = Load(channel, "partial")
        workers = [asyncio.create_task(load.worker()) for _ in range(WORKERS)]
        try:
            await load.until_served(1, 10)

            # saved_model.pb present, variables not yet: the load fails, version 1 serves
            (base / ".incoming-2").mkdir()
            shutil.copy2(swap.three / "saved_model.pb", base / ".incoming-2" / "saved_model.pb")
            move_into_place(base / ".incoming-2", base, 2)
            incomplete = (
                2,
                "END",
                grpc.StatusCode.NOT_FOUND.value[0],
                f"SavedModel at {base / '2'} has variables but no variables/variables.index; "
                "was the version directory moved into place before it was complete?",
            )
            await wait_for_status(channel, "partial", [incomplete, (1, "AVAILABLE", 0, "")])
            await load.until_served(1, 10)

            # the writer finishes: the changed directory is loaded again and takes over
            shutil.copytree(swap.three / "variables", base / "2" / "variables")
            shutil.copytree(swap.three / "assets", base / "2" / "assets")
            await wait_for_status(channel, "partial", [(2, "AVAILABLE", 0, ""), (1, "END", 0, "")])
            await load.until_served(2, 10)
        finally:
            load.stop.set()
            await asyncio.gather(*workers)

    assert load.failures == []
    for version, values in load.served:
        np.testing.assert_allclose(values, EXPECTED["two"] if version == 1 else EXPECTED["three"])
