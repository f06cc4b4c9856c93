"""Pickling where big buffers travel as files in shared memory, copied without the GIL.

Pickling a 64 MB body, or unpickling 100 MB of tensors, is one memcpy (plus the page
faults of fresh memory) with the GIL held: 40-100 ms during which the event loop cannot
run, whichever thread does it. Here every `bytes` or numpy array of at least
`min_bytes` is written to its own file in a directory on tmpfs (`/dev/shm`), with
`write()` (the kernel copies while the GIL is released), and the pickle holds only its
path. Loading reads a body back with `read()` (GIL released too) and maps an array's
file copy-on-write, so the array costs no copy at all. Each file is unlinked as it is
loaded; `discard` unlinks the files of a pickle that will never be loaded, and the
directory is removed with the offloader.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

_TMPFS = Path("/dev/shm")


def new_directory() -> Path:
    """A fresh directory for one process's shared buffers (on tmpfs where there is one)."""
    parent = _TMPFS if _TMPFS.is_dir() and os.access(_TMPFS, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="tfs-gateway-", dir=parent))


class _SpillingPickler(pickle.Pickler):
    """A pickler that writes big buffers to files of `directory` instead of the pickle."""

    def __init__(self, file: io.BytesIO, directory: Path, min_bytes: int) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._directory = directory
        self._min_bytes = min_bytes
        self.paths: list[str] = []

    def reducer_override(self, obj: object) -> Any:
        if type(obj) is bytes and len(obj) >= self._min_bytes:
            return _load_bytes, (self._spill(obj),)
        if isinstance(obj, np.ndarray) and obj.dtype != object and obj.nbytes >= self._min_bytes:
            contiguous = np.ascontiguousarray(obj)
            path = self._spill(contiguous.data.cast("B"))
            return _load_array, (path, contiguous.dtype.str, contiguous.shape)
        return NotImplemented

    def _spill(self, data: bytes | memoryview) -> str:
        descriptor, path = tempfile.mkstemp(dir=self._directory)
        self.paths.append(path)
        with open(descriptor, "wb", buffering=0) as file:
            view = memoryview(data)
            while view:
                view = view[file.write(view) or 0 :]
        return path


def dumps(value: object, directory: Path, min_bytes: int) -> bytes:
    """`value` pickled, its big buffers spilled to files in `directory`."""
    buffer = io.BytesIO()
    _SpillingPickler(buffer, directory, min_bytes).dump(value)
    return buffer.getvalue()


def loads(data: bytes) -> object:
    """The value `dumps` pickled; its files are read (or mapped) and unlinked."""
    return pickle.loads(data)


def discard(data: bytes) -> None:
    """Unlink the files of a pickle nobody will load (its request was abandoned)."""
    with contextlib.suppress(OSError):  # a file already gone: nothing left to free
        pickle.loads(data)  # loading unlinks each file; the value is dropped


def _load_bytes(path: str) -> bytes:
    with open(path, "rb") as file:
        data = file.read()
    os.unlink(path)
    return data


def _load_array(path: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    with open(path, "rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)  # writable, private
    os.unlink(path)  # the mapping stays valid; the memory goes with the last array using it
    return np.frombuffer(mapped, dtype=np.dtype(dtype)).reshape(shape)
