"""Server processes: start, wait for the first 200, measure CPU and RSS from /proc, stop.

A server runs in its own session (process group), with stdout/stderr in a log file. CPU is
utime+stime summed over the server's process tree; RSS is read per process.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    """What one /proc/<pid>/stat says that we use."""

    pid: int
    ppid: int
    cpu_seconds: float
    rss_bytes: int


def _read_stat(pid: int) -> ProcStat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    return ProcStat(pid, int(fields[1]), cpu, int(fields[21]) * _PAGE)


def process_tree(root: int) -> list[ProcStat]:
    """`root` and all its live descendants."""
    stats = [s for pid in os.listdir("/proc") if pid.isdigit() and (s := _read_stat(int(pid)))]
    children: dict[int, list[ProcStat]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat)
    found = [s for s in stats if s.pid == root]
    index = 0
    while index < len(found):
        found.extend(children.get(found[index].pid, []))
        index += 1
    return found


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds used so far by each process of the tree, by pid."""
    return {stat.pid: stat.cpu_seconds for stat in process_tree(root)}


def wait_idle(root: int, timeout: float, busy: float = 0.05, window: float = 0.5) -> bool:
    """Wait until the tree uses under `busy` cores over `window` s (e.g. a backlog drained)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(tree_cpu(root).values())
        time.sleep(window)
        if sum(tree_cpu(root).values()) - before < busy * window:
            return True
    return False


class Server:
    """One running server process (tree)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.log = log
        self._log_file = log.open("ab")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The pid of the process the harness started."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the started process is still running."""
        return self.process.poll() is None

    def wait_for_200(
        self, port: int, path: str, body: bytes, timeout: float
    ) -> tuple[float, bytes]:
        """Poll POST `path` until it answers 200; return seconds since start and the answer.

        Raises RuntimeError if the process exits or `timeout` passes first.
        """
        deadline = self.started + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"exited with code {self.process.returncode} ({last})")
            status, answer = post(port, path, body)
            if status == 200:
                return time.monotonic() - self.started, answer
            last = f"last status {status}" if status else last
            time.sleep(0.05)
        raise RuntimeError(f"no 200 within {timeout:.0f} s ({last})")

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL to the server's process group after `grace` seconds."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        with contextlib.suppress(ProcessLookupError):  # leftovers of our own session only
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log_file.close()


def post(port: int, path: str, body: bytes, timeout: float = 5.0) -> tuple[int | None, bytes]:
    """POST `body` as JSON to 127.0.0.1:`port``path`; status (None: unreachable) and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None, b""
    finally:
        connection.close()
