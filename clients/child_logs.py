"""The stderr of a TensorFlow child process (the embedded backend, the example builder),
read line by line and logged through this process's logging, so the gateway's log stays
one format (JSON lines by default).

Three kinds of line arrive:

- JSON objects: the child's own Python log records (`tfserving_compat --log_format=json`,
  `examples.build --log-format json`), logged again under their logger name and level.
- TensorFlow's C++ (absl) lines, `I0000 00:00:1796186803.356836  6974 port.cc:153] ...`:
  absl writes them to stderr before anything can configure it (TF_CPP_MIN_LOG_LEVEL does
  not filter them), so they are filtered here. INFO lines (the oneDNN notice, "Could not
  find cuda drivers", CPU instruction notices) are DEBUG; absl's "before
  absl::InitializeLog()" banner is DEBUG; `failed call to cuInit` is DEBUG on a machine
  without an NVIDIA driver (it only says there is no GPU); warnings and errors stay so.
- Anything else (a crash's traceback, a stray print): WARNING, or the level of the C++
  line it continues (TF splits some messages over lines).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path
from typing import IO

# absl's prefix: severity, MMDD, time (before absl is initialized: 00:00:<epoch seconds>),
# thread id, file:line]
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([^\]\s]+)\] ?(.*)$")
_ABSL_LEVELS = {
    "I": logging.DEBUG,
    "W": logging.WARNING,
    "E": logging.ERROR,
    "F": logging.CRITICAL,
}
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written"
_NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def forward_child_logs(stream: IO[bytes], logger_name: str) -> threading.Thread:
    """Log every line of `stream` (a child's stderr) until it closes, in a daemon thread.

    Lines that are not the child's own JSON records go to `logger_name`.stderr (plain
    lines) and `logger_name`.native (TensorFlow's C++ lines)."""
    thread = threading.Thread(
        target=_forward, args=(stream, logger_name), name=f"{logger_name}-stderr", daemon=True
    )
    thread.start()
    return thread


def _forward(stream: IO[bytes], logger_name: str) -> None:
    plain = logging.getLogger(f"{logger_name}.stderr")
    native = logging.getLogger(f"{logger_name}.native")
    no_gpu = not _NVIDIA_DRIVER.exists()
    continued: int | None = None  # the level of the C++ line a plain line may continue
    with stream:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            record = _json_record(line)
            if record is not None:
                name, level, message = record
                logging.getLogger(name).log(level, "%s", message)
                continued = None
                continue
            absl = _ABSL_LINE.match(line)
            if absl is not None:
                severity, where, message = absl.groups()
                continued = _ABSL_LEVELS[severity]
                if no_gpu and "failed call to cuInit" in message:
                    continued = logging.DEBUG
                native.log(continued, "%s: %s", where, message)
            elif line.startswith(_ABSL_BANNER):
                native.debug("%s", line)
            else:
                plain.log(logging.WARNING if continued is None else continued, "%s", line)


def _json_record(line: str) -> tuple[str, int, str] | None:
    """(logger, level, message) of a line that is a JSON log record, else None."""
    if not line.startswith("{"):
        return None
    try:
        fields = json.loads(line)
    except ValueError:
        return None
    if not isinstance(fields, dict) or not isinstance(fields.get("message"), str):
        return None
    level = logging.getLevelName(str(fields.get("level", "INFO")))
    message = fields["message"]
    if isinstance(fields.get("exc_info"), str):
        message = f"{message}\n{fields['exc_info']}"
    if not isinstance(level, int):
        level = logging.INFO
    return str(fields.get("logger") or "root"), level, message
