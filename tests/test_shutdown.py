"""SIGTERM: work started for a person finishes and is recorded, leases are handed back."""

import asyncio
import signal
import sqlite3
from pathlib import Path

from bot.vpsorg.simulator import Fault
from tests.test_restart import _until
from tests.test_restore_crash import deployment


async def test_sigterm_lets_a_create_in_flight_finish(tmp_path: Path) -> None:
    async with deployment(tmp_path) as bot:
        await bot.start()
        bot.sim.inject(Fault("POST", "/snapshots/", kind="hang", delay=1.5))
        await bot.command("create 12345 during-shutdown")
        await _until(lambda: bot.sim.calls_to("POST", "/snapshots/"))
        assert bot.process is not None
        bot.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.process.wait(), timeout=30)
        assert bot.process.returncode in (0, -signal.SIGTERM)

    database = sqlite3.connect(tmp_path / "crash.db")
    rows = database.execute("SELECT status, target_id, lease_owner FROM requests").fetchall()
    sent = database.execute("SELECT kind, status FROM outbox").fetchall()
    database.close()
    [(status, target_id, lease_owner)] = rows
    assert status == "running"  # the answer was recorded: the operation will be followed
    assert target_id is not None
    assert lease_owner is None
    assert sent == [("post", "sent")] or sent == [("post", "pending")]
