"""The hand-over between `serve` (the front, which acks) and its work process, on a real
socket pair: the work process's side driven line by line, and the front's side against a
stand-in work process that dies on request."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot import handoff
from bot.handoff import MOST_TRIES, WorkProcess, serve_handed
from bot.slack.commands import Arrival, Work

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class Front:
    """The test plays the front: it writes lines and reads what the work process says."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def send(self, **message: Any) -> None:
        self.writer.write(json.dumps(message).encode() + b"\n")

    def raw(self, line: bytes) -> None:
        self.writer.write(line)

    async def said(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), 10)
        assert line, "the work process closed its end"
        return dict(json.loads(line))


async def test_the_work_process_runs_what_it_is_handed_and_says_what_ended() -> None:
    ran: list[tuple[str, dict[str, Any], Any, Arrival]] = []
    finished = asyncio.Event()

    def work(name: str) -> Work:
        async def run(body: dict[str, Any], client: Any, arrival: Arrival) -> None:
            ran.append((name, body, client, arrival))

        return run

    async def again(w: Work, body: dict[str, Any], client: Any, arrival: Arrival) -> None:
        ran.append(("again", body, client, arrival))

    async def finish() -> None:
        finished.set()

    ended_keys: list[str] = []

    async def ended_work(keys: list[str]) -> None:
        ended_keys.extend(keys)

    tasks: set[asyncio.Task[None]] = set()
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    front = Front(reader, writer)
    serving = asyncio.create_task(
        serve_handed(
            theirs.detach(),
            {"/snapshot": work("/snapshot"), "approve": work("approve")},
            "the-client",
            lambda c: tasks.add(asyncio.create_task(c)),
            finish,
            again,
            ended_work,
        )
    )
    try:
        assert (await front.said())["ready"] is True
        front.send(seq=1, name="/snapshot", body={"text": "list 1"}, key="b:1", at=AT.isoformat())
        front.raw(b"not json\n")  # ignored, and the next line is still read
        front.send(seq=2, name="no-such-work", body={}, key="b:2", at=AT.isoformat())
        front.send(seq=3, name="approve", body={"v": 3}, key="b:3", at=AT.isoformat(), again=1)
        front.send(seq=4, name="approve", body={"v": 4}, key="b:4", at=AT.isoformat())
        ended: set[int] = set()
        while ended != {1, 2, 3, 4}:  # in batches, each seq once
            batch = (await front.said())["done"]
            assert not ended & set(batch)
            ended |= set(batch)
        assert ran == [
            ("/snapshot", {"text": "list 1"}, "the-client", Arrival("b:1", AT)),
            ("again", {"v": 3}, "the-client", Arrival("b:3", AT)),
            ("approve", {"v": 4}, "the-client", Arrival("b:4", AT)),
        ]
        assert ended_keys == ["b:1", "b:3", "b:4"]  # recorded as ended before "done"
        front.send(drain=True)
        await asyncio.wait_for(serving, 10)
        assert finished.is_set()
        assert await reader.read() == b""  # closed after finishing
    finally:
        writer.close()
        serving.cancel()


# A stand-in for `python -m bot work`: ready, then "done" for every request, except that a
# body {"die": true} kills it on the spot; it notes each line it was handed in NOTES.
CHILD = """
import json, os, socket, sys
notes = open(os.environ["NOTES"], "a")
sock = socket.socket(fileno=int(sys.argv[sys.argv.index("--fd") + 1]))
sock.sendall(b'{"ready":true}\\n')
for line in sock.makefile("rb"):
    message = json.loads(line)
    notes.write(line.decode()); notes.flush()
    if message.get("drain"):
        sys.exit(0)
    if message["body"].get("die") or (message["body"].get("die_once") and "again" not in message):
        os._exit(3)
    sock.sendall(json.dumps({"done": [message["seq"]]}).encode() + b"\\n")
"""


@pytest.fixture
def quick_restarts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(handoff, "RESTART_PAUSE", 0.01)
    monkeypatch.setattr(handoff, "HAND_EVERY", 0.0)
    monkeypatch.setenv("NOTES", str(tmp_path / "notes"))
    return tmp_path / "notes"


def notes(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def until(condition: Any, what: str) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_work_process_that_dies_is_started_again_with_what_it_had_not_finished(
    quick_restarts: Path,
) -> None:
    front = WorkProcess([sys.executable, "-c", CHILD])
    await front.start()
    try:
        first = front.pid
        front.hand("w", {"die": True}, Arrival("b:1", AT))
        front.hand("w", {"n": 2}, Arrival("b:2", AT))
        # each work process dies on the first; it is handed again MOST_TRIES times, then dropped
        await until(lambda: front.in_hand == 0, "every request finished or dropped")
        assert front.restarts == MOST_TRIES + 1
        assert front.pid != first
        handed = notes(quick_restarts)
        assert [(m["seq"], m.get("again", 0)) for m in handed] == [
            (1, 0), (1, 1), (1, 2), (1, 3), (2, 4),
        ]  # fmt: skip
        assert (handed[-1]["body"], handed[-1]["key"]) == ({"n": 2}, "b:2")
        front.hand("w", {"n": 3}, Arrival("b:3", AT))
        await until(lambda: front.in_hand == 0, "the next request finished")
    finally:
        await front.stop(wait=10)
    assert notes(quick_restarts)[-1] == {"drain": True}
    assert front.running is False


async def test_a_work_process_that_cannot_start_stops_the_front_from_starting(
    quick_restarts: Path,
) -> None:
    from bot.config import StartupError

    with pytest.raises(StartupError, match="work process"):
        await WorkProcess([sys.executable, "-c", "raise SystemExit(2)"]).start()


async def test_a_request_handed_just_before_stopping_goes_before_the_drain(
    quick_restarts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last ack, handed within the 5 ms its line waits for company, is written before
    {"drain": true}, so the work process runs it (found by the review)."""
    monkeypatch.setattr(handoff, "HAND_EVERY", 0.005)
    front = WorkProcess([sys.executable, "-c", CHILD])
    await front.start()
    front.hand("w", {"n": 1}, Arrival("b:1", AT))
    await front.stop(wait=10)
    assert [m.get("seq", "drain") for m in notes(quick_restarts)] == [1, "drain"]
    assert front.in_hand == 0


async def test_stopping_while_a_work_process_is_replaced_lets_the_new_one_finish(
    quick_restarts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM during the restart pause: another work process is started at once, given what
    was acked, and drained (found by the review: they were dropped)."""
    monkeypatch.setattr(handoff, "RESTART_PAUSE", 5.0)
    front = WorkProcess([sys.executable, "-c", CHILD])
    await front.start()
    front.hand("w", {"die_once": True}, Arrival("b:1", AT))  # the work process dies on it
    front.hand("w", {"n": 2}, Arrival("b:2", AT))  # acked, never begun
    await until(lambda: front.restarts == 1, "the first death")
    await front.stop(wait=10)  # within the 5 s pause
    handed = [(m.get("seq", "drain"), m.get("again", 0)) for m in notes(quick_restarts)]
    assert handed == [(1, 0), (1, 1), (2, 1), ("drain", 0)]  # both handed again, then drained
    assert front.in_hand == 0


async def test_the_front_keeps_at_most_so_many_requests_for_its_work_process(
    quick_restarts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handoff, "MOST_IN_HAND", 3)
    front = WorkProcess([sys.executable, "-c", "import time; time.sleep(60)"])
    front._pending = {n: b"" for n in range(3)}  # three waiting: a work process that is behind
    assert front.accepting is False
    front._pending.pop(0)
    assert front.accepting is True
