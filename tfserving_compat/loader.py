"""Loads one SavedModel version into its own graph and session and runs its signatures.

Each version gets a `tf.Graph` and a `tf.compat.v1.Session`, loaded with the v1 loader
(which handles TF1 and TF2 exports and runs their init ops). Signatures run through
callables made with `Session._make_callable_from_options`: they feed tensors by name,
as TF Serving's C++ `Session::Run` does, without Python's placeholder shape checks.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2

from tfserving_compat.errors import ServingError, code_from_value, internal, not_found

_LOG = logging.getLogger(__name__)

CallableKey = tuple[tuple[str, ...], tuple[str, ...]]


class LoadedVersion:
    """A loaded servable version: its signatures and a session to run them."""

    def __init__(self, session: Any, meta_graph_def: Any) -> None:
        self._session = session
        self.meta_graph_def = meta_graph_def
        self._callables: dict[CallableKey, Any] = {}
        self._cache_lock = threading.Lock()
        self._in_flight = 0
        self._closing = False
        self._idle = threading.Condition()

    @property
    def signature_defs(self) -> Mapping[str, Any]:
        """The MetaGraphDef's signature_def map (SignatureDef protos by key), in full."""
        return self.meta_graph_def.signature_def  # type: ignore[no-any-return]

    def acquire(self) -> bool:
        """Marks a request in flight; False once the version is being unloaded."""
        with self._idle:
            if self._closing:
                return False
            self._in_flight += 1
            return True

    def release(self) -> None:
        """Ends a request started with `acquire`."""
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def close(self) -> None:
        """Waits for requests in flight, then closes the session (frees the graph)."""
        with self._idle:
            self._closing = True
            while self._in_flight > 0:
                self._idle.wait()
        with self._cache_lock:
            self._callables.clear()
        self._session.close()

    def run(self, feeds: Sequence[tuple[str, np.ndarray]], fetches: Sequence[str]) -> list[Any]:
        """Feeds tensors by name and fetches tensor names, like C++ `Session::Run`.

        TensorFlow errors keep their own canonical code and message.
        """
        key: CallableKey = (tuple(name for name, _ in feeds), tuple(fetches))
        try:
            runner = self._callable(key)
            outputs = runner(*(value for _, value in feeds))
        except tf.errors.OpError as exc:
            raise ServingError(code_from_value(exc.error_code), exc.message) from exc
        return list(outputs)

    def _callable(self, key: CallableKey) -> Any:
        """The cached callable for a feed/fetch combination, made on first use."""
        with self._cache_lock:
            runner = self._callables.get(key)
            if runner is None:
                options = config_pb2.CallableOptions(feed=list(key[0]), fetch=list(key[1]))
                runner = self._session._make_callable_from_options(options)
                self._callables[key] = runner
            return runner


def load_version(
    path: str, tags: Sequence[str], intra_op_threads: int = 0, inter_op_threads: int = 0
) -> LoadedVersion:
    """Loads the SavedModel in `path` (a version directory); raises ServingError on failure."""
    if not any(
        os.path.exists(os.path.join(path, name)) for name in ("saved_model.pb", "saved_model.pbtxt")
    ):
        # tensorflow/cc/saved_model/reader.cc ReadSavedModel
        raise not_found(
            "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
            f"{path}. Check that the directory exists and that you have the right "
            "permissions for accessing it."
        )
    graph = tf.Graph()
    config = config_pb2.ConfigProto(
        intra_op_parallelism_threads=intra_op_threads,
        inter_op_parallelism_threads=inter_op_threads,
    )
    session = tf.compat.v1.Session(graph=graph, config=config)
    try:
        with graph.as_default():
            meta_graph_def = tf.compat.v1.saved_model.loader.load(session, list(tags), path)
    except Exception as exc:
        session.close()
        raise _load_error(exc, path, tags) from exc
    graph.finalize()
    return LoadedVersion(session, meta_graph_def)


def _load_error(exc: BaseException, path: str, tags: Sequence[str]) -> ServingError:
    """Translates a loader exception into the status TF Serving's C++ loader gives."""
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, tf.errors.OpError):
        return ServingError(code_from_value(exc.error_code), exc.message)
    if isinstance(exc, OSError) and str(exc).startswith("Cannot parse file"):
        # tensorflow/core/platform/env.cc ReadBinaryProto
        pb_path = os.path.join(path, "saved_model.pb")
        return ServingError(grpc.StatusCode.DATA_LOSS, f"Can't parse {pb_path} as binary proto")
    if isinstance(exc, ValueError) and "not a valid checkpoint" in str(exc):
        # The graph has variables but variables/variables.index is missing (e.g. a version
        # directory still being written). TF's C++ loader skips the restore and serves
        # uninitialized variables; we refuse the version instead (docs/compatibility.md).
        return not_found(
            f"SavedModel at {path} has variables but no variables/variables.index; "
            "was the version directory moved into place before it was complete?"
        )
    if isinstance(exc, RuntimeError) and "could not be found in SavedModel" in str(exc):
        # tensorflow/cc/saved_model/reader.cc FindMetaGraphDef
        return not_found(
            f"Could not find meta graph def matching supplied tags: {{ {' '.join(tags)} }}. "
            "To inspect available tag-sets in the SavedModel, please use the SavedModel CLI: "
            "`saved_model_cli`"
        )
    if isinstance(exc, OSError):
        return not_found(str(exc))
    _LOG.exception("unexpected error while loading a SavedModel")
    return internal(f"{type(exc).__name__}: {exc}")
