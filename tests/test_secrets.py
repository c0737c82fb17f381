"""No token or signing secret in any log line, message, exception text or database row: the
suite's scenarios run against a real `serve` process with distinctive secrets, at DEBUG level,
and everything the bot wrote is scanned."""

import asyncio
import json
import re
import sqlite3
from pathlib import Path

from bot.slack import ids
from tests.conftest import BOB
from tests.test_restart import _until
from tests.test_restore_crash import deployment

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-7731-SECRET-BOT-TOKEN-c0ffee",
    "SLACK_SIGNING_SECRET": "SECRET-SIGNING-5e1f-badc0de",
    "VPS_API_TOKEN": "SECRET-VPS-TOKEN-9a8b7c",
}


def _fragments(secret: str) -> list[str]:
    """The secret and any 12-character piece of it (a partial leak is a leak)."""
    return [secret] + [secret[i : i + 12] for i in range(0, len(secret) - 12, 4)]


async def test_no_secret_leaves_the_bot(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    async with deployment(tmp_path, LOG_LEVEL="DEBUG", **SECRETS) as bot:
        await bot.start(output=log)
        await bot.command("list 12345")
        await bot.command("create 12345 secret-scan")
        await bot.command("delete 798")
        await bot.command("restore 801 scanning", command="/snapshot")
        await bot.command("list", command="/backup")
        await bot.command("frobnicate <!channel>")
        await _until(lambda: len(bot.slack.api_calls("chat.postMessage")) >= 3)
        buttons = {
            b["elements"][0]["action_id"]: b["elements"][0]["value"]
            for call in bot.slack.api_calls("chat.postMessage")
            for b in call.data.get("blocks", [])
            if b["type"] == "actions"
        }
        await bot.click(ids.DELETE_CONFIRM, buttons[ids.DELETE_CONFIRM], "U0000TEST")
        await bot.click(ids.RESTORE_APPROVE, buttons[ids.RESTORE_APPROVE], BOB)
        await _until(lambda: bot.restore_calls() == 1)
        bot.sim.finish_all()
        await asyncio.sleep(1.0)
        # a forged request, and VPS.org rejecting the token
        assert await bot.post("command=%2Fsnapshot&text=list", secret="wrong") == 401
        bot.sim.token = "rotated"
        await bot.command("list 12345")
        await _until(lambda: any("VPS_API_TOKEN" in json.dumps(c.data) for c in bot.slack.calls))
        await bot.stop()

        written = [log.read_text(errors="replace")]
        written += [json.dumps(call.data) for call in bot.slack.calls]
        written += [
            json.dumps([c.method, c.path, c.query, c.body]) for c in bot.sim.calls
        ]  # the Authorization header is where the VPS token belongs; nothing else may carry it
        database = sqlite3.connect(tmp_path / "crash.db")
        for (table,) in database.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            written += [repr(row) for row in database.execute(f"SELECT * FROM {table}")]  # noqa: S608
        database.close()

    everything = "\n".join(written)
    assert "DEBUG" in everything  # the scan saw debug logging
    assert "scanning" in everything  # and the scenarios' own traces
    assert re.search(r"level=\w+ logger=\S+ req=[0-9a-f]{12} ", written[0])  # structured
    for name, secret in SECRETS.items():
        for fragment in _fragments(secret):
            assert fragment not in everything, f"{name} leaked"
