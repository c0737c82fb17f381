"""The work process: what `serve` (and `socket`) hand their acknowledged requests to, so that the
work after an ack (VPS.org calls, database writes, answers) never shares the ack's event loop,
and the tracker and outbox sender run there too.

The front process acks, then writes one JSON line per request to the work process over a
socket pair: `{"seq", "name", "body", "key", "at"}`. The work process runs `works[name]` on it
exactly as the front would have (the first delivery recorded, the command audited once, the
answer sent) and writes back `{"done": seq}` when that work has ended. What is not done yet is
kept by the front: should the work process die, a new one is started and given every request
not done, in order (one that was already recorded is a replay there, never run twice). At
shutdown the front says `{"drain": true}` after the last ack, and the work process finishes
everything it was given (up to its drain time) before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from bot.slack.commands import Again, Arrival, Work

log = logging.getLogger(__name__)
LINE_LIMIT = 16 * 1024 * 1024  # a line holds one Slack payload (at most 1 MiB, escaped)
READY_WAIT = 60.0  # seconds a new work process may take to connect to its database and start
RESTART_PAUSE = 1.0  # seconds before a work process that stopped is started again (doubling)
MOST_PAUSE = 30.0
MOST_TRIES = 3  # the oldest request when this many work processes stopped is not handed again
HAND_EVERY = 0.005  # seconds: requests acked meanwhile are written to the work process at once
DONE_EVERY = 0.05  # seconds: the work process says which requests ended, in one line
MOST_IN_HAND = 10_000  # requests the front keeps for its work process before it refuses more
STOP_WAIT = 45.0  # seconds for the work process to finish its drain (20 s) and hand leases back


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


class WorkProcess:
    """The front's side: starts `python -m bot work`, hands it requests, and starts it again
    (with what it had not finished) when it stops unexpectedly."""

    def __init__(self, argv: list[str] | None = None) -> None:
        self._argv = argv or [sys.executable, "-m", "bot", "work"]
        # the lines not done yet, by seq, in the order acked (bytes: nothing for the GC to scan)
        self._pending: dict[int, bytes] = {}
        self._tries: dict[int, int] = {}  # seq -> work processes that stopped with it in hand
        self._oldest: dict[int, int] = {}  # seq -> of them, those while it was the oldest
        self._seq = 0
        self._unsent: list[int] = []  # handed during this turn of the event loop, not written
        self._writer: asyncio.StreamWriter | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._reading: asyncio.Task[None] | None = None
        self._stopping = False
        self._draining = False
        self.restarts = 0

    @property
    def running(self) -> bool:
        return self._writer is not None

    @property
    def in_hand(self) -> int:
        """Requests handed over and not finished yet."""
        return len(self._pending)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Start the work process and wait until it is ready; StartupError if it cannot start."""
        from bot.config import StartupError

        if not await self._spawn():
            raise StartupError("the work process (python -m bot work) could not start")
        self._supervisor = asyncio.create_task(self._supervise(), name="vpsbot-work-process")

    @property
    def accepting(self) -> bool:
        """False while MOST_IN_HAND requests wait for the work process (it is down, or far
        behind): the front then answers 503 rather than take more it cannot keep."""
        return len(self._pending) < MOST_IN_HAND

    def hand(self, name: str, body: dict[str, Any], arrival: Arrival) -> None:
        """Give the work process one acknowledged request (kept until it says it is done)."""
        self._seq += 1
        message = {
            "seq": self._seq, "name": name, "body": body,
            "key": arrival.key, "at": arrival.at.isoformat(),
        }  # fmt: skip
        self._pending[self._seq] = _line(message)
        self._unsent.append(self._seq)
        if len(self._unsent) == 1:  # the acks of the next few ms go with it, in one write
            asyncio.get_running_loop().call_later(HAND_EVERY, self._send)

    def _send(self) -> None:
        """Write what was handed since the last call, in one go (if the work process is up:
        otherwise a new one is given everything not done)."""
        lines = [self._pending[seq] for seq in self._unsent if seq in self._pending]
        self._unsent.clear()
        if self._writer is not None and lines:
            self._writer.write(b"".join(lines))

    async def stop(self, wait: float = STOP_WAIT) -> None:
        """After the last ack: the work process finishes what it was given, then exits (it is
        killed after `wait` seconds)."""
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_WAIT + RESTART_PAUSE
        supervisor = self._supervisor
        while self._pending and self._writer is None and loop.time() < deadline:
            # the work process is being replaced: the new one takes what was acked, then drains
            if supervisor is None or supervisor.done():
                break
            await asyncio.sleep(0.05)
        self._draining = True  # no other work process is started after this
        self._send()  # what was handed in the last few ms goes before the drain
        process, writer = self._process, self._writer
        if process is None:
            return
        if writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write(b'{"drain":true}\n')
                await writer.drain()
        try:
            await asyncio.wait_for(process.wait(), wait)
        except TimeoutError:
            log.error("the work process did not finish in %.0f s; stopping it", wait)
            process.kill()
            await process.wait()
        if self._supervisor is not None:
            await asyncio.wait({self._supervisor}, timeout=5)
        if self._pending:
            log.warning("%d requests handed to the work process were not finished", self.in_hand)

    async def _spawn(self) -> bool:
        """A new work process on a new socket pair, given every request not done yet."""
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                *self._argv,
                "--fd",
                str(theirs.fileno()),
                "--front",
                str(os.getpid()),
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours, limit=LINE_LIMIT)
        try:
            ready = await asyncio.wait_for(reader.readline(), READY_WAIT)
        except TimeoutError:
            ready = b""
        if not ready.startswith(b'{"ready"'):
            log.error("the work process did not start (exit code %s)", process.returncode)
            writer.close()
            if process.returncode is None:
                process.kill()
            await process.wait()
            return False
        self._process, self._writer = process, writer
        self._unsent.clear()  # all of them go now
        for seq, line in self._pending.items():  # in the order they were acked
            tries = self._tries.get(seq, 0)
            writer.write(_line(json.loads(line) | {"again": tries}) if tries else line)
        self._reading = asyncio.create_task(self._read(reader, writer), name="vpsbot-work-done")
        return True

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """`{"done": seq}` lines until the work process closes its end (it stopped)."""
        try:
            while line := await reader.readline():
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    for seq in json.loads(line)["done"]:
                        self._forget(int(seq))
        except (OSError, ValueError):  # reset, or a line over the limit: the process is gone
            pass
        if self._writer is writer:  # nothing more is written to a process that is gone
            self._writer = None
        writer.close()

    def _forget(self, seq: int) -> None:
        self._pending.pop(seq, None)
        self._tries.pop(seq, None)
        self._oldest.pop(seq, None)

    async def _supervise(self) -> None:
        """Start the work process again whenever it stops without being told to."""
        while True:
            process = self._process
            assert process is not None
            code = await process.wait()
            if self._reading is not None:  # every "done" it wrote is read before handing again
                await asyncio.wait({self._reading}, timeout=5)
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if self._draining or (self._stopping and not self._pending):
                return
            self.restarts += 1
            for seq in self._pending:
                self._tries[seq] = self._tries.get(seq, 0) + 1
            if self._pending:  # requests are begun in order: the oldest may be what kills it
                seq = next(iter(self._pending))
                self._oldest[seq] = self._oldest.get(seq, 0) + 1
                if self._oldest[seq] > MOST_TRIES:
                    log.error(
                        "dropped request %d: %d work processes stopped with it", seq, MOST_TRIES + 1
                    )
                    self._forget(seq)
            log.error(
                "the work process stopped (exit code %s); starting another for %d requests",
                code,
                self.in_hand,
            )
            if not await self._restart() or self._stopping:
                return

    async def _restart(self) -> bool:
        """Start another work process (backoff 1 s to 30 s; at once when stopping, so that it
        finishes what was acked): True once one is up, False if stopping gave up on it."""
        pause = RESTART_PAUSE
        while True:
            if not self._stopping:
                await asyncio.sleep(pause)
            if await self._spawn():
                return True
            if self._stopping:
                return False
            pause = min(pause * 2, MOST_PAUSE)


async def serve_handed(
    fd: int,
    works: dict[str, Work],
    client: Any,
    start: Callable[[Coroutine[Any, Any, None]], None],
    finish: Callable[[], Awaitable[None]],
    again: Again,
    ended_work: Callable[[list[str]], Awaitable[None]],
) -> None:
    """The work process's side: say ready, then start `works[name]` (with the Web API
    `client`) for every request handed over (through `again` for one handed again, after a
    work process stopped with it), recording with `ended_work(keys)` that they ended and then
    writing `{"done": [seq…]}` (together, every 50 ms). When told to
    drain, or when the front has gone (the end of its stream), `finish` lets what was started
    end before the stream is closed. SIGINT and SIGTERM are left to the front, which drains
    this process after its last ack."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: None)
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd), limit=LINE_LIMIT)
    writer.write(b'{"ready":true,"pid":%d}\n' % os.getpid())

    ended: list[tuple[int, str | None]] = []  # (seq, the identity to record as ended)
    reporting: set[asyncio.Task[None]] = set()

    async def say_done() -> None:
        """Record the batch as ended (one transaction), then tell the front: a request the
        front forgets is one a new work process would leave alone."""
        batch = list(ended)
        ended.clear()
        keys = [key for _, key in batch if key is not None]
        try:
            if keys:
                await ended_work(keys)
        except Exception as error:
            log.warning(
                "could not record that %d requests ended (%s)", len(keys), type(error).__name__
            )
        if batch and not writer.is_closing():
            writer.write(json.dumps({"done": [seq for seq, _ in batch]}).encode() + b"\n")

    def report() -> None:
        task = loop.create_task(say_done())
        reporting.add(task)
        task.add_done_callback(reporting.discard)

    def done(seq: int, key: str | None = None) -> None:
        ended.append((seq, key))
        if len(ended) == 1:
            loop.call_later(DONE_EVERY, report)

    async def then_done(work: Coroutine[Any, Any, None], seq: int, key: str) -> None:
        """Run `work`; once it has ended (not cancelled at shutdown: that one is not done),
        it is recorded as ended and the front told, with the others of the next 50 ms."""
        try:
            await work
        except Exception:
            log.exception("work for request %d failed", seq)
        done(seq, key)

    try:
        while line := await reader.readline():
            try:
                message = json.loads(line)
                if message.get("drain"):
                    break
                seq = int(message["seq"])
                work = works.get(str(message["name"]))
                arrival = Arrival(str(message["key"]), datetime.fromisoformat(message["at"]))
                body = message["body"]
            except (ValueError, TypeError, KeyError, AttributeError):
                log.error("the work process was handed a line it cannot read; ignored")
                continue
            if work is None or not isinstance(body, dict):
                log.error("request %d names no work this process has; ignored", seq)
                done(seq)
                continue
            handed = again if message.get("again") else None
            run = handed(work, body, client, arrival) if handed else work(body, client, arrival)
            start(then_done(run, seq, arrival.key))
    finally:
        try:
            await finish()
        finally:
            if reporting:
                await asyncio.wait(set(reporting))
            await say_done()
            with contextlib.suppress(OSError):
                await writer.drain()
            writer.close()


__all__ = ["WorkProcess", "serve_handed"]
