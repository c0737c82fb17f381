"""Structured log lines (key=value, or one JSON object a line) carrying the id of the Slack
request being handled."""

from __future__ import annotations

import logging
import os
import sys
import uuid
from contextvars import ContextVar
from typing import Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str] = ContextVar("request_id", default="-")

LogFormat = Literal["keyvalue", "json"]

FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s req=%(request_id)s msg=%(message)r"


def new_request_id() -> str:
    """A short id for one command or click, set for everything logged while handling it."""
    value = uuid.uuid4().hex[:12]
    request_id.set(value)
    return value


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def json_formatter() -> JsonFormatter:
    """The key=value line's fields as JSON: `ts` (ISO 8601, UTC), `level`, `logger`, `req`,
    `message`, `exception` (the traceback, one string) when the record carries one, and any
    `extra=` fields but uvicorn's `color_message` (its message again, with terminal colours)."""
    return JsonFormatter(
        ["levelname", "name", "request_id", "message"],
        rename_fields={
            "levelname": "level",
            "name": "logger",
            "request_id": "req",
            "exc_info": "exception",
        },
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        timestamp="ts",
        json_ensure_ascii=False,
    )


def configure(level: str | None = None, format: LogFormat | None = None) -> None:
    """Log lines to stderr at `level` in `format` (defaults: $LOG_LEVEL if it is a level, else
    INFO; $LOG_FORMAT if it is a format, else keyvalue; the settings check both and report a
    bad one with the rest of the configuration)."""
    handler = logging.StreamHandler(sys.stderr)
    chosen = (format or os.environ.get("LOG_FORMAT", "")).strip().lower()
    if chosen == "json":
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    wanted = (level or os.environ.get("LOG_LEVEL", "INFO")).strip().upper()
    root.setLevel(wanted if wanted in logging.getLevelNamesMapping() else "INFO")
    # their INFO lines repeat what the bot says in its own words (slack_sdk logs each retry)
    for noisy in ("alembic", "httpx", "slack_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
