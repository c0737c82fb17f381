"""The client against hostile peers on loopback: the configured timeout is a deadline for the
whole call, answers over 10 MB are refused unread, and VPS.org's error text never carries the
bot's own credentials to Slack or to the logs."""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from bot.domain.errors import BadRequest, BadResponse, Unavailable
from bot.domain.lifecycle import Status
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.client import VpsClient, httpx_timeout, read_retry
from bot.vpsorg.simulator import Fault, Simulator
from tests.conftest import VPS_TOKEN, Stack

TIMEOUT = 1.5
MAX_BODY = 10 * 1024 * 1024
EMPTY_PAGE = b'{"count": 0, "results": []}'


@dataclass
class Peer:
    """A raw HTTP/1.1 server on 127.0.0.1: reads each request's head and body, then lets
    `answer` write whatever it likes (trickled, oversized, malformed)."""

    url: str
    requests: list[bytes] = field(default_factory=list)
    finished: list[bool] = field(default_factory=list)  # per connection: answer written whole
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # a connection was handled


Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def peer(answer: Answer) -> AsyncIterator[Peer]:
    handlers: set[asyncio.Task[None]] = set()
    state = Peer("")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            state.requests.append(head + await reader.readexactly(length))
            await answer(reader, writer)
            await writer.drain()
            state.finished.append(True)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # the client hung up first, or the test is over (a cancelled handler would make
            # Python 3.11's stream callback log an error)
            state.finished.append(False)
        finally:
            writer.close()
            state.ended.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}/api/v1"
    try:
        yield state
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write `data` one byte a second, while the client is still there. Each byte comes well
    within httpx's per-read timeout, so only a deadline for the whole call ends the wait."""
    for byte in data:
        if reader.at_eof():
            raise ConnectionResetError
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(1.0)


def head(*lines: str) -> bytes:
    return (
        "\r\n".join(["HTTP/1.1 200 OK", "Content-Type: application/json", *lines]) + "\r\n\r\n"
    ).encode()


async def trickled_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(head(f"Content-Length: {len(EMPTY_PAGE)}"))
    await trickle(reader, writer, EMPTY_PAGE)


async def trickled_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await trickle(reader, writer, head(f"Content-Length: {len(EMPTY_PAGE)}") + EMPTY_PAGE)


def client(url: str, timeout: float = TIMEOUT) -> VpsClient:
    return VpsClient(
        url, VPS_TOKEN, timeout=httpx_timeout(timeout), retry=read_retry(backoff_factor=0.01)
    )


CALLS = {
    "GET": lambda vps: vps.list_snapshots(12345),
    "POST": lambda vps: vps.create_snapshot(12345, "trickled"),
}


@pytest.mark.parametrize("answer", [trickled_body, trickled_head], ids=["body", "head"])
@pytest.mark.parametrize("method", list(CALLS))
async def test_a_trickled_answer_ends_at_the_deadline(answer: Answer, method: str) -> None:
    async with peer(answer) as slow, client(slow.url) as vps:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="did not answer in time") as caught:
            await CALLS[method](vps)
        took = time.monotonic() - started
    assert took < 3 * TIMEOUT, f"the call took {took:.1f} s with a {TIMEOUT} s timeout"
    assert caught.value.outcome_unknown is (method == "POST")  # a write may have happened
    assert len(slow.requests) == 1  # a deadline is not retried
    assert slow.requests[0].startswith(f"{method} /api/v1/snapshots/".encode())


async def test_retries_sleep_within_the_deadline_so_a_5xx_is_reported_as_such(
    simulator: Simulator, served_simulator: str
) -> None:
    """A GET is still retried, but its retries sleep within the deadline: the person hears
    about VPS.org's 502, not about a time-out."""
    simulator.inject(
        Fault("GET", "/snapshots/", status=502, body={"detail": "gateway"}, times=None)
    )
    async with VpsClient(served_simulator, VPS_TOKEN, timeout=httpx_timeout(0.5)) as vps:
        with pytest.raises(Unavailable, match="gateway") as caught:
            await vps.list_snapshots(12345)
    assert caught.value.status == 502
    assert len(simulator.calls_to("GET", "/snapshots/")) >= 2  # it was retried


# -- answers over 10 MB ------------------------------------------------------------------------


CHUNK = b" " * 65536
HUGE = 64 * 1024 * 1024  # well past the bound and past what loopback socket buffers can hold


async def declared_too_large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Says 11 MB, sends a little, then waits: reading it whole would wait for ever."""
    writer.write(head(f"Content-Length: {MAX_BODY + 1024 * 1024}") + b'{"count": 0, "results": [')
    await writer.drain()
    await reader.read()  # until the client hangs up
    raise ConnectionResetError


async def chunked_too_large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A valid JSON page padded past 64 MB, chunked, with no Content-Length."""
    writer.write(head("Transfer-Encoding: chunked"))
    for data in [
        b'{"count": 0, "results": [], "padding": "',
        *[CHUNK] * (HUGE // len(CHUNK)),
        b'"}',
    ]:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()
    writer.write(b"0\r\n\r\n")


@pytest.mark.parametrize(
    "answer", [declared_too_large, chunked_too_large], ids=["length", "chunked"]
)
async def test_an_answer_over_10_mb_is_refused_unread(answer: Answer) -> None:
    async with peer(answer) as huge:
        async with client(huge.url, timeout=10.0) as vps:
            started = time.monotonic()
            with pytest.raises(BadResponse, match="larger than 10 MB") as caught:
                await vps.list_snapshots()
            took = time.monotonic() - started
        await asyncio.wait_for(huge.ended.wait(), 5)
    assert caught.value.status == 200
    assert took < 5, f"refusing took {took:.1f} s"
    assert huge.finished == [False]  # the client hung up before the answer was all sent


# -- VPS.org's error text is scrubbed of the bot's credentials -----------------------------------


QUOTING = {
    "detail": f"Forbidden: request had headers {{Authorization: Bearer {VPS_TOKEN}}}, "
    "and a proxy added Bearer sk-proxy-0123456789; token "
    f"{VPS_TOKEN} is not allowed here."
}


async def test_a_403_quoting_the_token_is_scrubbed(
    simulator: Simulator, served_simulator: str
) -> None:
    simulator.inject(Fault("POST", "/snapshots/", status=403, body=QUOTING))
    async with VpsClient(served_simulator, VPS_TOKEN) as vps:
        with pytest.raises(BadRequest) as caught:
            await vps.create_snapshot(12345, "quoted")
    detail = caught.value.detail
    assert VPS_TOKEN not in detail
    assert "sk-proxy-0123456789" not in detail
    assert detail.startswith("Forbidden: request had headers {Authorization: Bearer [redacted]")
    assert "token [redacted] is not allowed here." in detail
    assert caught.value.status == 403


async def test_a_token_at_the_clipping_point_leaves_no_part_behind(
    simulator: Simulator, served_simulator: str
) -> None:
    """The detail is clipped to 300 characters after scrubbing, so no prefix of it survives."""
    simulator.inject(
        Fault("GET", "/snapshots/", status=400, body={"detail": "x" * 290 + VPS_TOKEN})
    )
    async with VpsClient(served_simulator, VPS_TOKEN) as vps:
        with pytest.raises(BadRequest) as caught:
            await vps.list_snapshots()
    assert VPS_TOKEN[:8] not in caught.value.detail


async def test_the_token_reaches_neither_slack_nor_the_debug_log(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "httpx_retries"):
        caplog.set_level(logging.DEBUG, logger=name)
    stack.sim.inject(Fault("POST", "/snapshots/", status=403, body=QUOTING))
    reply = await stack.ask("create 12345 x")
    shown = json.dumps(reply.data, ensure_ascii=False)
    assert "VPS.org refused the request: Forbidden: request had headers" in shown
    assert "[redacted]" in shown
    assert VPS_TOKEN not in shown
    everything_slack_got = json.dumps([c.data for c in stack.slack.calls], ensure_ascii=False)
    assert VPS_TOKEN not in everything_slack_got
    assert "sk-proxy-0123456789" not in everything_slack_got
    # httpx and httpcore did log this call at DEBUG, and none of it carries the token
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    assert any(r.name == "httpx" and "POST" in r.getMessage() for r in caplog.records)
    assert [c.authorization for c in stack.sim.calls_to("POST")] == [f"Bearer {VPS_TOKEN}"]
    assert VPS_TOKEN not in caplog.text
    assert "sk-proxy-0123456789" not in caplog.text
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:  # nor the bot's records
        [request] = await uow.requests.in_status(*Status)
    assert request.status is Status.FAILED
    assert VPS_TOKEN not in repr(request.outcome)
