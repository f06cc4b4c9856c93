"""The version policy (TF Serving's own policy test cases) and unload-after-requests.

Both run in-process on real objects: `next_action` is a pure function, and the unload
test closes a real TensorFlow session of a real SavedModel while a request holds it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from tfserving_compat.errors import ServingError, internal
from tfserving_compat.loader import load_version
from tfserving_compat.versions import (
    AVAILABLE,
    END,
    LOADING,
    START,
    UNLOADING,
    Action,
    VersionEntry,
    next_action,
)

# LoaderHarness states -> (our state, failed)
NEW, READY, ERROR, DISABLED = (START, False), (AVAILABLE, False), (END, True), (END, False)
LOAD_, UNLOADING_ = (LOADING, False), (UNLOADING, False)

# tensorflow_serving/core/availability_preserving_policy_test.cc, case by case:
# (version, state, is_aspired) rows, and the expected action.
CASES: dict[str, tuple[list[tuple[int, tuple[int, bool], bool]], Action | None]] = {
    "LoadsNewAspired": (
        [
            (1, UNLOADING_, False),
            (2, ERROR, False),
            (3, READY, True),
            (4, NEW, True),
            (5, NEW, True),
        ],
        ("load", 5),
    ),
    "UnloadsNonAspiredFirst": (
        [
            (1, UNLOADING_, False),
            (2, ERROR, False),
            (3, READY, False),
            (4, READY, True),
            (5, NEW, True),
        ],
        ("unload", 3),
    ),
    "UnloadsFirstNonAspiredWhenNoAspired": (
        [(1, DISABLED, False), (2, READY, False), (3, ERROR, False)],
        ("unload", 2),
    ),
    "ReturnsNoActionWhenNone": (
        [
            (1, READY, True),
            (2, ERROR, True),
            (3, LOAD_, True),
            (4, UNLOADING_, False),
            (5, DISABLED, False),
        ],
        None,
    ),
    "DoesNotUnloadWhenOtherNotReady": ([(1, READY, False), (2, LOAD_, True)], None),
    "DoesNotUnloadWhenOtherInError": ([(1, READY, False), (2, ERROR, True)], None),
    "UnloadIfOtherReadyEvenIfLoading": (
        [(1, READY, False), (2, LOAD_, True), (3, READY, True)],
        ("unload", 1),
    ),
    "UnloadIfOtherReadyEvenIfError": (
        [(1, READY, False), (2, ERROR, True), (3, READY, True)],
        ("unload", 1),
    ),
    "UnloadIfNoAspiredVersionsReady": (
        [(2, READY, False), (1, READY, False), (3, ERROR, True), (4, LOAD_, True)],
        ("unload", 1),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_availability_preserving_policy(case: str) -> None:
    rows, expected = CASES[case]
    versions = {
        version: VersionEntry(path="", state=state, error=internal("x") if failed else None)
        for version, (state, failed), _ in rows
    }
    aspired = {version for version, _, is_aspired in rows if is_aspired}
    assert next_action(versions, aspired, frozenset()) == expected


def test_specific_versions_are_never_unloaded() -> None:
    # availability_preserving_policy.cc: GetSpecificVersionsInConfig
    versions = {1: VersionEntry(path="", state=AVAILABLE)}
    assert next_action(versions, set(), frozenset({1})) is None
    assert next_action(versions, set(), frozenset()) == ("unload", 1)


def test_unload_waits_for_the_request_holding_the_version(tf_test_models: Path) -> None:
    path = tf_test_models / "half_plus_two" / "123"
    loaded = load_version(str(path), ("serve",))
    signature = loaded.signature_defs["serving_default"]
    feed, fetch = signature.inputs["x"].name, signature.outputs["y"].name
    x = np.asarray([1.0, 2.0], dtype=np.float32)

    assert loaded.acquire()  # a request starts
    closer = threading.Thread(target=loaded.close)
    closer.start()
    # once close() has begun, no new request gets the version
    for _ in range(10_000):
        if not loaded.acquire():
            break
        loaded.release()
        closer.join(timeout=0.01)
    else:
        pytest.fail("close() never started")
    # the request already holding it still runs on the open session, and close() waits
    assert loaded.run([(feed, x)], [fetch])[0].tolist() == [2.5, 3.0]
    assert closer.is_alive()
    loaded.release()  # the request ends: the session may close now
    closer.join(timeout=60)
    assert not closer.is_alive()
    # what a request would get if the session were closed under it
    with pytest.raises(ServingError, match="CANCELLED: Session has been closed"):
        loaded.run([(feed, x)], [fetch])
