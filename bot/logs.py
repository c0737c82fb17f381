"""Structured log lines (key=value) carrying the id of the Slack request being handled."""

from __future__ import annotations

import logging
import os
import sys
import uuid
from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("request_id", default="-")

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


def configure(level: str | None = None) -> None:
    """Log lines to stderr at `level` (default: $LOG_LEVEL if it is a level, else INFO; the
    settings check LOG_LEVEL and report a bad one with the rest of the configuration)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    wanted = (level or os.environ.get("LOG_LEVEL", "INFO")).strip().upper()
    root.setLevel(wanted if wanted in logging.getLevelNamesMapping() else "INFO")
    # their INFO lines repeat what the bot says in its own words (slack_sdk logs each retry)
    for noisy in ("alembic", "httpx", "slack_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
