"""The HTTP surface's limits: a body over 1 MiB is a 413 however it is sent (declared or
chunked), and `/healthz` answers within 2 s whatever holds the database (503 while SQLite is
locked by another process, 200 again once it is free)."""

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from bot.slack.signing import signed_headers
from bot.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import SIGNING_SECRET, Stack, fixture

MIB = 1024 * 1024


async def chunks(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """The body streamed in pieces: httpx sends it chunked, without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]
        await asyncio.sleep(0)


def command(stack: Stack, key: str, text: str) -> str:
    fields = fixture("slash-command.json") | {
        "text": text,
        "response_url": stack.slack.response_url(key),
    }
    return urlencode(fields)


async def test_a_chunked_body_over_the_limit_is_a_413_and_reaches_nothing(stack: Stack) -> None:
    sent = len(stack.slack.calls)
    body = command(stack, "big", "create 12345 big " + "x" * (2 * MIB))
    headers = signed_headers(SIGNING_SECRET, body)  # signed: only the size is wrong
    answer = await stack.http.post("/slack/events", content=chunks(body.encode()), headers=headers)
    assert "content-length" not in answer.request.headers  # it really was streamed
    assert answer.status_code == 413
    assert answer.text == "request body too large"
    assert stack.slack.calls[sent:] == []
    assert stack.sim.calls == []
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        assert await uow.audit.events() == []


async def test_a_chunked_body_under_the_limit_is_served(stack: Stack) -> None:
    body = command(stack, "small", "list 12345")
    headers = signed_headers(SIGNING_SECRET, body)
    answer = await stack.http.post(
        "/slack/events", content=chunks(body.encode(), 50), headers=headers
    )
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 200
    assert "pre-migration-snapshot" in str((await stack.reply("small")).data)


async def test_healthz_answers_503_within_2_s_while_sqlite_is_locked(stack: Stack) -> None:
    assert (await stack.http.get("/healthz")).status_code == 200
    path = stack.bot.database.engine.url.database
    assert path
    holder = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    try:
        await asyncio.to_thread(holder.execute, "BEGIN EXCLUSIVE")  # another process's writer
        started = time.monotonic()
        answer = await stack.http.get("/healthz")
        took = time.monotonic() - started
        assert answer.status_code == 503
        assert answer.json() == {"status": "unavailable", "database": "unreachable"}
        assert took < 2.5
        started = time.monotonic()  # and again: a ping still waiting is not waited for twice
        assert (await stack.http.get("/healthz")).status_code == 503
        assert time.monotonic() - started < 2.5
    finally:
        await asyncio.to_thread(holder.execute, "ROLLBACK")
        holder.close()

    async def healthy() -> bool:
        return (await stack.http.get("/healthz")).status_code == 200

    deadline = time.monotonic() + 10
    while not await healthy():
        assert time.monotonic() < deadline, "/healthz did not recover after the lock was freed"
        await asyncio.sleep(0.05)
