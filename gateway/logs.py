"""Logging setup: JSON lines (default) or text on stderr, uvicorn's loggers included.

`logging_config(settings)` is a `logging.config.dictConfig` dictionary; the CLI hands it
to uvicorn as `log_config`, so every worker process configures itself the same way.
Every record carries the id of the request it was logged for (`request_id`, from
`CALL_CONTEXT`) when there is one.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

from clients.context import CALL_CONTEXT
from gateway.settings import Settings

JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_RENAMES = {"asctime": "time", "levelname": "level", "name": "logger"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to records that do not carry one."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keep the record; tag it with `request_id` when inside a request."""
        if not hasattr(record, "request_id"):
            request_id = CALL_CONTEXT.get().request_id
            if request_id is not None:
                record.request_id = request_id
        return True


def json_formatter() -> logging.Formatter:
    """The JSON-lines formatter (also used by the tests)."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.orjson import OrjsonFormatter  # the fastest of its encoders

    # uvicorn adds `color_message` (the message with terminal colour codes) to its records.
    reserved = [*RESERVED_ATTRS, "color_message"]
    return OrjsonFormatter(JSON_FIELDS, rename_fields=JSON_RENAMES, reserved_attrs=reserved)


def logging_config(settings: Settings) -> dict[str, Any]:
    """The dictConfig for `settings.log_format` and `settings.log_level`."""
    level = settings.log_level.upper()
    if settings.log_format == "json":
        formatter: dict[str, Any] = {"()": "gateway.logs.json_formatter"}
    else:
        formatter = {"()": "logging.Formatter", "fmt": TEXT_FORMAT, "defaults": {"request_id": "-"}}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"gateway": formatter},
        "filters": {"request_id": {"()": "gateway.logs.RequestIdFilter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "gateway",
                "filters": ["request_id"],
            }
        },
        "loggers": {
            # uvicorn's own loggers go through the root handler; its access log stays off
            # (the gateway writes its own, "gateway.access").
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
        "root": {"level": level, "handlers": ["stderr"]},
    }


def configure_logging(settings: Settings) -> None:
    """Apply `logging_config(settings)` to this process."""
    logging.config.dictConfig(logging_config(settings))
