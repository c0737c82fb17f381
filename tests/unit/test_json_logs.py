"""LOG_FORMAT=json: one JSON object a line with the key=value line's fields; key=value stays
the default."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from freezegun import freeze_time

from bot.config import ConfigError, load_settings
from bot.logs import configure, new_request_id, request_id
from bot.slack.socket_mode import client_log

log = logging.getLogger("bot.test")


class Stderr:
    """What the handler `configure` installs writes to stderr (captured by pytest)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def lines(self) -> list[str]:
        """Lines as a log shipper reads them: split at newlines only."""
        return self._capsys.readouterr().err.removesuffix("\n").split("\n")

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Stderr]:
    """stderr, with the root logger and the request id put back as they were afterwards."""
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    token = request_id.set("-")
    yield Stderr(capsys)
    request_id.reset(token)
    root.handlers[:] = handlers
    root.setLevel(level)


@freeze_time("2025-05-01 12:00:00.25")
def test_a_json_line_has_the_key_value_fields(stderr: Stderr) -> None:
    configure("INFO", "json")
    log.info("before any request")
    req = new_request_id()
    log.info("restore #%d of %s approved", 7, "web-1", extra={"server": 12345})
    log.debug("not at INFO")

    assert stderr.records() == [
        {
            "ts": "2025-05-01T12:00:00.250000+00:00",
            "level": "INFO",
            "logger": "bot.test",
            "req": "-",
            "message": "before any request",
        },
        {
            "ts": "2025-05-01T12:00:00.250000+00:00",
            "level": "INFO",
            "logger": "bot.test",
            "req": req,
            "message": "restore #7 of web-1 approved",
            "server": 12345,
        },
    ]


def test_a_traceback_is_one_field_of_one_line(stderr: Stderr) -> None:
    configure("INFO", "json")
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as error:
        log.error("listener failed", exc_info=error)
    log.warning("and the next line")

    lines = stderr.lines()
    assert len(lines) == 2
    failed, following = map(json.loads, lines)
    assert set(failed) == {"ts", "level", "logger", "req", "message", "exception"}
    assert failed["level"] == "ERROR"
    assert failed["message"] == "listener failed"
    assert failed["exception"].startswith("Traceback (most recent call last):\n")
    assert failed["exception"].endswith("\nZeroDivisionError: division by zero")
    assert "exception" not in following
    assert following["message"] == "and the next line"


def test_a_message_with_newlines_quotes_and_unicode_stays_on_its_line(
    stderr: Stderr,
) -> None:
    configure("INFO", "json")
    message = "line one\nsaid \"hi\" and 'bye'\\ — ünïcode ✓\r\n\tend\u2028"
    log.warning(message)
    log.warning("second")

    lines = stderr.lines()
    assert len(lines) == 2
    assert json.loads(lines[0])["message"] == message
    assert json.loads(lines[1])["message"] == "second"
    assert "ünïcode ✓" in lines[0]  # readable as written, not \u-escaped


@pytest.mark.parametrize(("level", "traceback"), [("INFO", False), ("DEBUG", True)])
def test_slack_sdk_connection_tracebacks_only_at_debug(
    stderr: Stderr, level: str, traceback: bool
) -> None:
    configure(level, "json")
    try:
        raise ConnectionError("Slack went away")
    except ConnectionError:
        client_log.exception("failed to connect")

    [record] = stderr.records()
    assert record["message"] == "failed to connect"
    assert ("exception" in record) is traceback


def test_uvicorns_coloured_copy_of_its_message_is_left_out(stderr: Stderr) -> None:
    configure("INFO", "json")
    log.info(  # as uvicorn logs (its own loggers' state depends on what ran before)
        "Started server process [%d]", 42, extra={"color_message": "Started \x1b[36m%d\x1b[0m"}
    )

    [record] = stderr.records()
    assert record["message"] == "Started server process [42]"
    assert "color_message" not in record


def test_log_format_from_the_environment_in_any_case(
    stderr: Stderr, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_FORMAT", " JSON ")
    configure()
    log.info("hello")

    [record] = stderr.records()
    assert record["message"] == "hello"
    assert record["level"] == "INFO"


@freeze_time("2025-05-01 12:00:00.25")
def test_key_value_stays_the_default(stderr: Stderr) -> None:
    configure()
    log.info("two\nlines")

    assert stderr.lines() == [
        "ts=2025-05-01 12:00:00,250 level=INFO logger=bot.test req=- msg='two\\nlines'"
    ]


def test_the_settings_read_log_format_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    assert load_settings().log_format == "keyvalue"
    monkeypatch.setenv("LOG_FORMAT", " Json")
    assert load_settings().log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "KEYVALUE")
    assert load_settings().log_format == "keyvalue"


def test_an_unknown_log_format_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "xml-hunter2")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.problems == ["LOG_FORMAT is invalid: expected keyvalue or json"]
