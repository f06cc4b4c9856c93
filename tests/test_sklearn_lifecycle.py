"""scikit-learn model lifecycle and artifact safety, on real files and estimators.

Polling picks up new versions, a broken new version never replaces a serving one, a swap
under load loses no request, and artifacts load only when they are safe to: pickles need
`allow_pickle`, pinned digests must match, library versions must match and files must stay
inside the base path. Waits are bounded (`eventually`); nothing asserts on durations.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import sklearn
from prometheus_client import REGISTRY

from clients.sklearn_backend import SklearnBackend, save_model
from clients.types import Code, ModelSource, ModelSpec, ModelState, VersionPolicy, VersionStatus
from gateway.settings import ModelConfig, Settings
from tests.conftest import StartSklearn, gateway_client
from tests.test_sklearn_backend import ROWS, iris_model

POLL = 0.05  # seconds between rescans in these tests


def publish(base: Path, version: int, c: float = 1.0, **kwargs: Any) -> Path:
    """Save iris_model(c) as `base/<version>` the safe way: build elsewhere, rename in."""
    staging = base / f".staging-{version}"
    save_model(iris_model(c), staging, **kwargs)
    final = base / str(version)
    staging.rename(final)
    return final


async def eventually(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Wait until `check()` is true; the 30 s bound only guards against a hang."""

    async def holds() -> bool:
        result = check()
        return await result if inspect.isawaitable(result) else result

    try:
        async with asyncio.timeout(30):
            while True:
                if await holds():
                    return
                await asyncio.sleep(POLL / 2)
    except TimeoutError:
        pytest.fail(f"never happened: {what}")


def loads(model: str, outcome: str) -> float:
    """gateway_model_loads_total for `model` and `outcome`."""
    value = REGISTRY.get_sample_value(
        "gateway_model_loads_total", {"model": model, "outcome": outcome}
    )
    return value or 0.0


def unloads(model: str) -> float:
    """gateway_model_unloads_total for `model`."""
    return REGISTRY.get_sample_value("gateway_model_unloads_total", {"model": model}) or 0.0


def states(statuses: list[VersionStatus]) -> list[tuple[int, ModelState]]:
    """(version, state) pairs, as status() lists them."""
    return [(s.version, s.state) for s in statuses]


async def only_status(backend: SklearnBackend, name: str, version: int) -> VersionStatus:
    """The status of one version."""
    (status,) = await backend.status(name, version)
    return status


# --------------------------------------------------------------------- polling and swaps


async def test_polling_picks_up_a_new_version_without_restart(
    start_sklearn: StartSklearn, tmp_path: Path
) -> None:
    base = tmp_path / "polled"
    publish(base, 1, c=0.01)
    backend = await start_sklearn(ModelSource("polled", str(base)), poll_seconds=POLL)
    assert (await backend.metadata(ModelSpec("polled"))).version == 1
    loaded, unloaded = loads("polled", "loaded"), unloads("polled")

    publish(base, 2, c=1.0)

    async def serves_v2() -> bool:
        return states(await backend.status("polled", None)) == [
            (2, ModelState.AVAILABLE),
            (1, ModelState.END),
        ]

    await eventually(serves_v2, "version 2 replaces version 1")
    spec = ModelSpec("polled", signature_name="predict_proba")
    assert (await backend.metadata(spec)).version == 2
    out = await backend.predict(ModelSpec("polled", 2, "", "predict_proba"), {"inputs": ROWS})
    np.testing.assert_allclose(out["outputs"], iris_model(1.0).predict_proba(ROWS))
    assert (loads("polled", "loaded"), unloads("polled")) == (loaded + 1, unloaded + 1)


async def test_broken_new_version_keeps_the_old_one_serving(
    start_sklearn: StartSklearn, tmp_path: Path
) -> None:
    base = tmp_path / "fragile"
    publish(base, 1)
    backend = await start_sklearn(ModelSource("fragile", str(base)))
    failed = loads("fragile", "failed")
    # A half-copied version: the artifact is cut short.
    (base / "2").mkdir()
    good = (base / "1" / "model.skops").read_bytes()
    (base / "2" / "model.skops").write_bytes(good[: len(good) // 2])
    await backend.reload()
    v2, v1 = await backend.status("fragile", None)
    assert (v2.state, v2.error_code) == (ModelState.END, Code.DATA_LOSS)
    assert "model.skops: BadZipFile" in v2.error_message
    assert (v1.state, v1.error_code) == (ModelState.AVAILABLE, Code.OK)
    assert (await backend.metadata(ModelSpec("fragile"))).version == 1
    out = await backend.predict(ModelSpec("fragile", 1), {"inputs": ROWS})
    assert out["outputs"].tolist() == [0, 1, 2]
    assert loads("fragile", "failed") == failed + 1

    await backend.reload()  # unchanged directory: not tried again
    assert loads("fragile", "failed") == failed + 1
    assert (await only_status(backend, "fragile", 1)).state == ModelState.AVAILABLE

    (base / "2" / "model.skops").write_bytes(good)  # the copy completes: tried again
    await backend.reload()
    assert states(await backend.status("fragile", None)) == [
        (2, ModelState.AVAILABLE),
        (1, ModelState.END),
    ]


async def test_removed_versions_are_retired(start_sklearn: StartSklearn, tmp_path: Path) -> None:
    base = tmp_path / "shrinking"
    for version in (1, 2):
        publish(base, version)
    backend = await start_sklearn(ModelSource("shrinking", str(base), VersionPolicy("all")))
    shutil.rmtree(base / "2")
    await backend.reload()
    assert states(await backend.status("shrinking", None)) == [
        (2, ModelState.END),
        (1, ModelState.AVAILABLE),
    ]
    assert (await backend.metadata(ModelSpec("shrinking"))).version == 1


async def test_a_failing_scan_does_not_stop_polling(
    start_sklearn: StartSklearn,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logger = logging.getLogger("clients.sklearn_backend")
    monkeypatch.setattr(logger, "disabled", False)  # a dictConfig elsewhere may have disabled it
    monkeypatch.setattr(logger, "propagate", True)
    base = tmp_path / "flaky"
    publish(base, 1)
    backend = await start_sklearn(ModelSource("flaky", str(base)), poll_seconds=POLL)
    hidden = base.rename(tmp_path / "elsewhere")

    async def scan_failed() -> bool:
        return "cannot list the base path of model flaky" in caplog.text

    with caplog.at_level(logging.WARNING, logger="clients.sklearn_backend"):
        await eventually(scan_failed, "the failed scan is logged")
    assert (await only_status(backend, "flaky", 1)).state == ModelState.AVAILABLE
    hidden.rename(base)
    publish(base, 2)

    async def serves_v2() -> bool:
        return (await backend.metadata(ModelSpec("flaky"))).version == 2

    await eventually(serves_v2, "polling goes on after a failed scan")


async def test_swap_under_load_loses_no_request(tmp_path: Path) -> None:
    base = tmp_path / "swap"
    publish(base, 1, c=0.01)
    old, new = (iris_model(c).predict_proba(ROWS) for c in (0.01, 1.0))
    settings = Settings(
        sklearn_poll_seconds=POLL,
        models=[ModelConfig(name="swap", platform="sklearn", base_path=str(base))],
    )
    body = {"signature_name": "predict_proba", "instances": ROWS.tolist()}
    failures: list[str] = []
    seen = {"old": 0, "new": 0}
    stop = asyncio.Event()

    async with gateway_client(settings) as http:

        async def client() -> None:
            while not stop.is_set():
                await asyncio.sleep(0)  # an in-process error answer may never suspend
                response = await http.post("/v1/models/swap:predict", json=body)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                    continue
                got = np.array(response.json()["predictions"])
                seen["new" if np.allclose(got, new) else "old"] += 1
                assert np.allclose(got, new) or np.allclose(got, old)

        clients = [asyncio.create_task(client()) for _ in range(6)]
        try:
            await eventually(lambda: seen["old"] >= 20, "v1 serves under load")
            staging = base / ".staging-2"
            save_model(iris_model(1.0), staging)
            staging.rename(base / "2")
            await eventually(lambda: seen["new"] >= 20, "v2 serves under load")
        finally:
            stop.set()
            await asyncio.gather(*clients)
        status = (await http.get("/v1/models/swap")).json()["model_version_status"]
    assert failures == []
    assert [(s["version"], s["state"]) for s in status] == [("2", "AVAILABLE"), ("1", "END")]


# ------------------------------------------------------------------ artifact safety


async def test_pickles_need_allow_pickle(start_sklearn: StartSklearn, tmp_path: Path) -> None:
    base = tmp_path / "pickled"
    publish(base, 1, fmt="joblib")
    refused = await start_sklearn(ModelSource("pickled", str(base)))
    status = await only_status(refused, "pickled", 1)
    assert (status.state, status.error_code) == (ModelState.END, Code.FAILED_PRECONDITION)
    for fragment in ("model.joblib is a pickle", "runs whatever code", "`allow_pickle: true`"):
        assert fragment in status.error_message
    allowed = await start_sklearn(ModelSource("pickled", str(base), allow_pickle=True))
    assert (await only_status(allowed, "pickled", 1)).state == ModelState.AVAILABLE
    out = await allowed.predict(ModelSpec("pickled", 1), {"inputs": ROWS})
    assert out["outputs"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("fmt", ["joblib", "skops"])
async def test_pinned_sha256_must_match(
    start_sklearn: StartSklearn, tmp_path: Path, fmt: str
) -> None:
    base = tmp_path / "pinned"
    artifact = publish(base, 1, fmt=fmt) / f"model.{fmt}"
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    wrong = "0" * 64
    mismatch = await start_sklearn(
        ModelSource("pinned", str(base), allow_pickle=True, sha256={1: wrong})
    )
    status = await only_status(mismatch, "pinned", 1)
    assert (status.state, status.error_code) == (ModelState.END, Code.FAILED_PRECONDITION)
    assert f"model.{fmt} has SHA-256 {digest}" in status.error_message
    assert f"configured sha256 for this version is {wrong}" in status.error_message
    pinned = ModelSource("pinned", str(base), allow_pickle=True, sha256={1: digest.upper()})
    match = await start_sklearn(pinned)
    assert (await only_status(match, "pinned", 1)).state == ModelState.AVAILABLE


def claim_saved_with(version_dir: Path, **versions: str) -> None:
    """Rewrite the sidecar as if the artifact was saved with other library versions."""
    sidecar = version_dir / "metadata.json"
    data = json.loads(sidecar.read_text())
    data["saved_with"].update(versions)
    sidecar.write_text(json.dumps(data))


async def test_library_version_mismatch_fails_readiness(tmp_path: Path) -> None:
    base = tmp_path / "iris"
    claim_saved_with(publish(base, 1), sklearn="1.4.2")
    running = sklearn.__version__
    major_minor = ".".join(running.split(".")[:2])
    expected = (
        f"iris version 1 was saved with scikit-learn 1.4.2 but {running} is running; "
        f"re-save it with scikit-learn {major_minor} (python -m gateway build-examples for "
        "the examples) or run scikit-learn 1.4"
    )
    settings = Settings(
        sklearn_poll_seconds=0,
        models=[ModelConfig(name="iris", platform="sklearn", base_path=str(base))],
    )
    async with gateway_client(settings) as http:
        ready = await http.get("/readyz")
        status = (await http.get("/v1/models/iris")).json()["model_version_status"]
    assert ready.status_code == 503
    assert expected in ready.json()["models"]["iris"]
    assert expected in ready.json()["error"]
    assert status[0]["state"] == "END"
    assert status[0]["status"]["error_code"] == "FAILED_PRECONDITION"
    assert status[0]["status"]["error_message"] == expected


async def test_which_version_differences_matter(
    start_sklearn: StartSklearn, tmp_path: Path
) -> None:
    base = tmp_path / "libs"
    numpy_major = int(np.__version__.split(".")[0])
    claim_saved_with(publish(base, 1), numpy=f"{numpy_major - 1}.26.4")
    claim_saved_with(publish(base, 2), python="2.7.18", numpy=f"{numpy_major}.0.0")
    backend = await start_sklearn(ModelSource("libs", str(base), VersionPolicy("all")))
    v2, v1 = await backend.status("libs", None)
    assert v1.state == ModelState.END
    assert f"was saved with numpy {numpy_major - 1}.26.4 but" in v1.error_message
    assert v2.state == ModelState.AVAILABLE  # Python and numpy minor releases may differ
    info: Any = (await backend.metadata(ModelSpec("libs", 2))).extra["sklearn"]
    assert info["mismatched"] == ["numpy", "python"]


async def test_files_must_stay_inside_the_base_path(
    start_sklearn: StartSklearn, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    publish(outside, 1)
    base = tmp_path / "confined"
    base.mkdir()
    (base / "1").symlink_to(outside / "1", target_is_directory=True)  # version dir escapes
    (base / "2").mkdir()
    (base / "2" / "model.skops").symlink_to(outside / "1" / "model.skops")  # artifact escapes
    publish(base, 3)
    (base / "3" / "metadata.json").unlink()
    (base / "3" / "metadata.json").symlink_to(outside / "1" / "metadata.json")  # sidecar escapes
    publish(base, 4, c=0.5)
    inside = base / "5"
    inside.symlink_to(base / "4", target_is_directory=True)  # symlinks within base_path are fine
    backend = await start_sklearn(ModelSource("confined", str(base), VersionPolicy("all")))
    statuses = {s.version: s for s in await backend.status("confined", None)}
    for version, what in ((1, "version directory '1'"), (2, "model.skops"), (3, "metadata.json")):
        status = statuses[version]
        assert (status.state, status.error_code) == (ModelState.END, Code.PERMISSION_DENIED)
        assert f"{what} resolves outside the model's base_path" in status.error_message
        assert str(tmp_path) not in status.error_message
    assert statuses[4].state == statuses[5].state == ModelState.AVAILABLE


async def test_hand_saved_pickle_without_sidecar_loads_with_a_warning(
    start_sklearn: StartSklearn, tmp_path: Path
) -> None:
    version_dir = tmp_path / "bare" / "1"
    version_dir.mkdir(parents=True)
    joblib.dump(iris_model(), version_dir / "model.joblib")
    backend = await start_sklearn(ModelSource("bare", str(tmp_path / "bare"), allow_pickle=True))
    info: Any = (await backend.metadata(ModelSpec("bare"))).extra["sklearn"]
    assert info["saved_with"] is None
    assert info["warnings"] and "no metadata.json" in info["warnings"][0]
