"""The use cases against in-memory fakes (tests/fakes/memory.py): no database, no HTTP. Each test
checks what a person would notice: what VPS.org receives, what the store holds, what is queued
for Slack."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain.errors import (
    AlreadyHandled,
    AtLimit,
    BadRequest,
    ConflictingRestore,
    NotAllowed,
    NotRequester,
    RestoreUnderWay,
    SelfApproval,
    Unavailable,
)
from bot.domain.lifecycle import Event, Status
from bot.domain.model import (
    COMPLETED,
    IN_PROGRESS,
    Action,
    Backup,
    Kind,
    OperationRequest,
    Server,
    ServerRef,
    Snapshot,
)
from bot.domain.operations import CreateBackup, CreateSnapshot, RequestDelete, RequestRestore
from bot.domain.outcomes import Failure, Outcome, Recovery, Why
from bot.services import NoDirectory, operations, restores, tracking
from bot.services.lifecycle import Lifecycle, Policy
from bot.services.operations import Actor
from tests.fakes.memory import FakeVps, MemoryStore, factory

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
SERVER = 12345
CHANNEL = "C0TEST"
ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
AS_ALICE = Actor(ALICE, CHANNEL)
AS_BOB = Actor(BOB, CHANNEL)
NOBODY = NoDirectory()


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def lifecycle(store: MemoryStore, clock: Clock, **policy: object) -> Lifecycle:
    """Safety snapshots off unless asked for (tests/unit/test_safety.py has them on)."""
    policy.setdefault("safety_snapshot", False)
    return Lifecycle(uow=factory(store), clock=clock, policy=Policy(**policy))  # type: ignore[arg-type]


@pytest.fixture
def life(store: MemoryStore, clock: Clock) -> Lifecycle:
    return lifecycle(store, clock)


def moves(store: MemoryStore, request_id: int) -> list[tuple[str, str | None]]:
    """The audited transitions of a request: (event, who)."""
    return [
        (row.detail["event"], row.actor_id)
        for row in store.audit_rows("transition", request_id=request_id)
    ]


def api_calls(store: MemoryStore, request_id: int) -> list[dict[str, object]]:
    return [row.detail for row in store.audit_rows("api_call", request_id=request_id)]


# -- create ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intent", "path"),
    [
        (CreateSnapshot(SERVER, "before-update", "Before the update"), "/snapshots/"),
        (CreateBackup(SERVER, "nightly"), "/backups/"),
    ],
)
async def test_a_create_is_posted_once_and_followed(
    vps: FakeVps,
    life: Lifecycle,
    store: MemoryStore,
    intent: CreateSnapshot | CreateBackup,
    path: str,
) -> None:
    request = await operations.create(vps, life, AS_ALICE, intent)

    assert vps.paths("POST") == [path]
    objects: list[Snapshot | Backup] = [*vps.snapshots.values(), *vps.backups.values()]
    [made] = objects  # exactly one new object
    assert made.server.id == SERVER
    assert made.description == intent.description
    assert request.status is Status.RUNNING
    assert request.target_id == made.id
    assert store.request(request.id) == request
    assert request.outcome.api_message.endswith("creation started")
    assert store.queued() == [("post", {"event": "running"}, request.id)]
    assert moves(store, request.id) == [("accept", None)]
    [accepted] = store.audit_rows("transition", request.id)
    assert accepted.detail == {
        "from": "executing",
        "to": "running",
        "event": "accept",
        "target_id": made.id,
    }
    assert api_calls(store, request.id) == [{"method": "POST", "path": path, "status": 201}]
    row = store.requests[request.id]
    assert row.lease_owner is None  # the tracker may take it from here
    assert row.next_check_at == life.policy.next_tick(NOW)


async def test_a_snapshot_is_made_with_the_name_asked_for(vps: FakeVps, life: Lifecycle) -> None:
    request = await operations.create(vps, life, AS_ALICE, CreateSnapshot(SERVER, "pre-db"))
    assert request.target_id is not None
    assert vps.snapshots[request.target_id].name == "pre-db"
    assert request.target_name == "pre-db"


async def test_at_the_limit_a_create_is_refused_and_nothing_is_sent(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    for n in range(5):
        vps.add_snapshot(SERVER, f"keep-{n}")
    with pytest.raises(AtLimit, match=r"web-1 \(12345\) already has 5 snapshots"):
        await operations.create(vps, life, AS_ALICE, CreateSnapshot(SERVER, "one-more"))
    assert vps.paths("POST") == []
    assert store.requests == {}
    assert store.queued() == []


async def test_a_create_refused_by_vpsorg_fails_and_is_not_resent(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    vps.fail_next("create_snapshot", BadRequest("Invalid name", status=400))
    with pytest.raises(BadRequest):
        await operations.create(vps, life, AS_ALICE, CreateSnapshot(SERVER, "x"))
    assert vps.paths("POST") == ["/snapshots/"]
    [row] = store.requests.values()
    failed = row.request
    assert failed.status is Status.FAILED
    assert failed.outcome.failure == Failure(
        Why.API_REFUSED, detail="Invalid name", http_status=400
    )
    assert moves(store, failed.id) == [("fail", None)]
    [failure] = store.audit_rows("transition", failed.id)
    assert failure.detail["error"] == "BadRequest"
    # the requester is answered by the raised error; the channel never saw the create
    assert store.queued() == []


async def test_a_create_whose_answer_is_lost_is_read_back_and_never_resent(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    old = vps.add_snapshot(SERVER, "pre-db")  # the same name, from before: not this create's
    vps.fail_next("create_snapshot", Unavailable("timed out"), after=True)
    request = await operations.create(vps, life, AS_ALICE, CreateSnapshot(SERVER, "pre-db"))
    assert vps.paths("POST") == ["/snapshots/"]
    [made] = (s for s in vps.snapshots.values() if s.id != old.id)
    assert request.status is Status.RUNNING
    assert request.target_id == made.id
    assert request.outcome.recovered is Recovery.LISTED
    assert store.queued() == [("post", {"event": "running"}, request.id)]


# -- delete ----------------------------------------------------------------------------------


async def test_a_delete_is_sent_once_however_often_it_is_confirmed(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    snapshot = vps.add_snapshot(SERVER, "old")
    asked = await operations.request_delete(
        vps, life, AS_ALICE, RequestDelete(Kind.SNAPSHOT, snapshot.id)
    )
    assert asked.status is Status.PENDING_CONFIRMATION
    assert asked.expires_at == NOW + life.policy.confirm_ttl
    assert store.queued() == [("post", {"event": "confirm_delete"}, asked.id)]
    assert vps.paths("DELETE") == []

    done = await operations.confirm_delete(vps, life, ALICE, asked.id, CHANNEL)
    with pytest.raises(AlreadyHandled) as again:
        await operations.confirm_delete(vps, life, ALICE, asked.id, CHANNEL)

    assert again.value.status is Status.SUCCEEDED
    assert vps.paths("DELETE") == [f"/snapshots/{snapshot.id}/"]
    assert snapshot.id not in vps.snapshots
    assert done.status is Status.SUCCEEDED
    assert done.outcome.decided_by == ALICE
    assert store.request(asked.id) == done
    assert moves(store, asked.id) == [("confirm", ALICE), ("complete", ALICE)]
    assert api_calls(store, asked.id) == [
        {"method": "DELETE", "path": f"/snapshots/{snapshot.id}/", "status": 204}
    ]
    assert store.queued(asked.id)[1:] == [("update", {"event": "succeeded"}, asked.id)]


async def test_only_the_requester_confirms_a_delete(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    backup = vps.add_backup(SERVER, "weekly")
    asked = await operations.request_delete(
        vps, life, AS_ALICE, RequestDelete(Kind.BACKUP, backup.id)
    )
    with pytest.raises(NotRequester):
        await operations.confirm_delete(vps, life, BOB, asked.id, CHANNEL)
    assert vps.paths("DELETE") == []
    assert store.request(asked.id).status is Status.PENDING_CONFIRMATION
    assert moves(store, asked.id) == []


# -- restore ---------------------------------------------------------------------------------


async def ask_restore(vps: FakeVps, life: Lifecycle) -> tuple[OperationRequest, str]:
    """Alice asks to restore a completed snapshot; returns the request and the restore's path."""
    snapshot = vps.add_snapshot(SERVER, "before-update")
    request = await restores.request_restore(
        vps, life, AS_ALICE, RequestRestore(Kind.SNAPSHOT, snapshot.id, "bad deploy")
    )
    return request, f"/snapshots/{snapshot.id}/restore/"


async def test_a_restore_approved_by_a_second_person_is_sent_exactly_once(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    request, restore = await ask_restore(vps, life)
    assert request.status is Status.PENDING_APPROVAL
    assert store.queued() == [("post", {"event": "approval_requested"}, request.id)]
    assert vps.paths("POST") == []

    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    with pytest.raises(AlreadyHandled):  # a late second click changes nothing
        await restores.approve(vps, life, NOBODY, CAROL, request.id, CHANNEL)

    assert vps.paths("POST") == [restore]
    assert vps.servers[SERVER].status == "restoring"
    running = store.request(request.id)
    assert running.status is Status.RUNNING
    assert running.outcome.approvers == (BOB,)
    assert running.outcome.seen_restoring
    assert moves(store, request.id) == [("approve", BOB), ("claim", BOB), ("accept", None)]
    assert api_calls(store, request.id) == [{"method": "POST", "path": restore, "status": 200}]
    assert [vote.voter_id for vote in store.votes[request.id]] == [BOB]


async def test_a_quorum_of_two_needs_two_approvers(
    vps: FakeVps, store: MemoryStore, clock: Clock
) -> None:
    life = lifecycle(store, clock, required_approvals=2)
    request, restore = await ask_restore(vps, life)

    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    assert vps.paths("POST") == []
    waiting = store.request(request.id)
    assert waiting.status is Status.PENDING_APPROVAL
    assert waiting.outcome.approvers == (BOB,)
    assert store.queued(request.id)[-1] == ("update", {"event": "vote"}, request.id)

    await restores.approve(vps, life, NOBODY, CAROL, request.id, CHANNEL)
    assert vps.paths("POST") == [restore]
    done = store.request(request.id)
    assert done.status is Status.RUNNING
    assert done.outcome.approvers == (BOB, CAROL)


async def test_the_requester_cannot_approve_their_own_restore(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    request, _ = await ask_restore(vps, life)
    with pytest.raises(SelfApproval):
        await restores.approve(vps, life, NOBODY, ALICE, request.id, CHANNEL)
    assert vps.paths("POST") == []
    assert store.request(request.id).status is Status.PENDING_APPROVAL
    assert store.votes == {}


async def test_an_approval_after_the_expiry_is_refused_and_the_request_expires(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request, _ = await ask_restore(vps, life)
    assert request.expires_at == NOW + life.policy.approval_ttl
    clock.now = request.expires_at
    # bot/ raises AlreadyHandled(expired) here, having expired the request first (see report);
    # what the approver reads says "expired" either way
    with pytest.raises(NotAllowed, match="expired"):
        await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    assert vps.paths("POST") == []
    assert store.request(request.id).status is Status.EXPIRED
    assert store.votes == {}
    assert moves(store, request.id) == [("expire", None)]
    assert store.queued(request.id)[-2:] == [  # the card says so; the requester hears it
        ("update", {"event": "expired"}, request.id),
        ("dm", {"event": "expired", "user": ALICE}, request.id),
    ]


async def test_a_click_that_arrived_before_the_expiry_still_counts(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request, restore = await ask_restore(vps, life)
    assert request.expires_at is not None
    clock.now = request.expires_at + timedelta(seconds=5)  # its turn came late
    arrived = request.expires_at - timedelta(microseconds=1)
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL, clicked_at=arrived)
    assert vps.paths("POST") == [restore]
    assert store.request(request.id).status is Status.RUNNING


async def test_a_denied_restore_is_never_sent(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    request, _ = await ask_restore(vps, life)
    await restores.deny(life, NOBODY, BOB, request.id, CHANNEL)
    with pytest.raises(AlreadyHandled) as late:
        await restores.approve(vps, life, NOBODY, CAROL, request.id, CHANNEL)

    assert late.value.status is Status.DENIED
    assert vps.paths("POST") == []
    denied = store.request(request.id)
    assert denied.status is Status.DENIED
    assert denied.outcome.decided_by == BOB
    assert moves(store, request.id) == [("deny", BOB)]
    assert store.queued(request.id)[1:] == [
        ("update", {"event": "denied"}, request.id),
        ("dm", {"event": "denied", "user": ALICE}, request.id),
    ]


async def test_a_restore_refused_by_vpsorg_fails_and_is_not_sent_again(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    request, restore = await ask_restore(vps, life)
    vps.fail_next("restore_snapshot", BadRequest("Server is locked", status=400))

    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)

    assert vps.paths("POST") == [restore]
    assert vps.calls[-1] == ("POST", restore)  # nothing read or sent after the refusal
    failed = store.request(request.id)
    assert failed.status is Status.FAILED
    assert failed.outcome.failure is not None
    assert failed.outcome.failure.why is Why.API_REFUSED
    assert failed.outcome.failure.detail == "Server is locked"
    assert moves(store, request.id)[-1] == ("fail", None)
    assert api_calls(store, request.id) == [{"method": "POST", "path": restore, "status": 400}]
    assert ("dm", {"event": "failed", "user": BOB}, request.id) in store.queued(request.id)


async def test_a_second_restore_of_a_server_waits_for_the_first(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    """Two restores of one server both waiting can only be met after a restore needing
    attention (a second may be asked then) turns out to be running after all: the database's
    one-restore-under-way index still refuses the second approval."""
    first, restore = await ask_restore(vps, life)
    vps.fail_next("restore_snapshot", Unavailable("timed out"))  # sent? unknown; not restoring
    await restores.approve(vps, life, NOBODY, BOB, first.id, CHANNEL)
    assert store.request(first.id).status is Status.NEEDS_ATTENTION
    second, _ = await ask_restore(vps, life)  # a person checked the server and asks again
    vps.servers[SERVER] = replace(vps.servers[SERVER], status="restoring")  # it was sent after all
    cause = Failure(Why.API_UNCONFIRMED)
    await restores.reconcile(vps, life, store.request(first.id), cause)
    assert store.request(first.id).status is Status.RUNNING

    with pytest.raises(RestoreUnderWay, match="already being restored"):
        await restores.approve(vps, life, NOBODY, CAROL, second.id, CHANNEL)

    assert vps.paths("POST") == [restore]
    assert store.request(second.id).status is Status.PENDING_APPROVAL
    assert second.id not in store.votes  # the vote rolled back with the refused move
    assert moves(store, second.id) == []


def put(store: MemoryStore, request_id: int, status: Status) -> None:
    """Drive a stored request to `status` (as the use cases would have, by other routes)."""
    row = store.requests[request_id]
    row.request = replace(row.request, status=status)


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (Status.PENDING_APPROVAL, "already has a restore waiting for approval: request #1 "),
        (Status.APPROVED, "is already being restored: request #1 "),
        (Status.EXECUTING, "is already being restored: request #1 "),
        (Status.RUNNING, "is already being restored: request #1 "),
    ],
)
async def test_a_restore_of_a_server_with_one_waiting_or_under_way_is_refused_when_asked(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, status: Status, says: str
) -> None:
    first, _ = await ask_restore(vps, life)
    put(store, first.id, status)
    queued, audited, calls = store.queued(), list(store.audit), list(vps.calls)
    backup = vps.add_backup(SERVER, "nightly")

    with pytest.raises(ConflictingRestore) as refused:
        await restores.request_restore(
            vps, life, AS_BOB, RequestRestore(Kind.BACKUP, backup.id, "again")
        )

    assert refused.value.existing.id == first.id
    assert refused.value.existing.status is status
    assert str(refused.value).startswith(f"web-1 ({SERVER}) {says}")
    assert f"(restore from snapshot `before-update`, asked by {ALICE})" in str(refused.value)
    assert list(store.requests) == [first.id]  # nothing created
    assert store.queued() == queued  # nothing for Slack
    assert store.audit == audited
    # only the look-ups of the target and its server: nothing sent
    assert vps.calls[len(calls) :] == [("GET", "/backups/"), ("GET", f"/servers/{SERVER}/")]


async def test_the_refusal_names_a_backup_by_its_id_never_its_description(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    backup = vps.add_backup(SERVER, "<!channel> *bold* notes")
    await restores.request_restore(vps, life, AS_ALICE, RequestRestore(Kind.BACKUP, backup.id))
    with pytest.raises(ConflictingRestore) as refused:
        await ask_restore(vps, life)
    assert f"request #1 (restore from backup {backup.id}, asked by {ALICE})" in str(refused.value)
    assert "channel" not in str(refused.value)


@pytest.mark.parametrize(
    "end",
    [
        lambda life, request: restores.cancel(life, ALICE, request.id, CHANNEL),
        lambda life, request: restores.deny(life, NOBODY, BOB, request.id, CHANNEL),
    ],
    ids=["cancelled", "denied"],
)
async def test_once_the_first_is_cancelled_or_denied_a_new_restore_is_accepted(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, end: Any
) -> None:
    first, _ = await ask_restore(vps, life)
    await end(life, first)
    second, _ = await ask_restore(vps, life)
    assert second.status is Status.PENDING_APPROVAL
    assert store.queued(second.id) == [("post", {"event": "approval_requested"}, second.id)]


@pytest.mark.parametrize(
    "status", [Status.SUCCEEDED, Status.FAILED, Status.EXPIRED, Status.NEEDS_ATTENTION]
)
async def test_a_restore_that_has_ended_does_not_block_a_new_one(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, status: Status
) -> None:
    """needs_attention too: that restore's outcome is unknown and only late evidence moves it;
    the person who checked the server must be able to ask again (the new request still needs
    approval, and its pre-check refuses a server that is restoring)."""
    first, _ = await ask_restore(vps, life)
    put(store, first.id, status)
    second, _ = await ask_restore(vps, life)
    assert second.status is Status.PENDING_APPROVAL
    assert store.request(first.id).status is status


async def test_a_request_past_its_approval_time_does_not_block_and_is_expired(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    first, _ = await ask_restore(vps, life)
    assert first.expires_at is not None
    clock.now = first.expires_at  # the sweeper has not come by yet
    second, _ = await ask_restore(vps, life)
    assert second.status is Status.PENDING_APPROVAL
    assert store.request(first.id).status is Status.EXPIRED  # as the sweeper would have
    assert moves(store, first.id) == [("expire", None)]
    assert store.queued(first.id)[-2:] == [
        ("update", {"event": "expired"}, first.id),
        ("dm", {"event": "expired", "user": ALICE}, first.id),
    ]


async def test_a_restore_of_another_server_is_not_blocked(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    await ask_restore(vps, life)
    vps.add_server(SERVER + 1, "db-1")
    other = vps.add_snapshot(SERVER + 1, "nightly")
    request = await restores.request_restore(
        vps, life, AS_ALICE, RequestRestore(Kind.SNAPSHOT, other.id)
    )
    assert request.status is Status.PENDING_APPROVAL


async def test_two_restores_asked_at_once_for_one_server_one_is_accepted(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    snapshots = [vps.add_snapshot(SERVER, f"snap-{n}") for n in range(2)]
    outcomes = await asyncio.gather(
        *(
            restores.request_restore(vps, life, AS_ALICE, RequestRestore(Kind.SNAPSHOT, s.id))
            for s in snapshots
        ),
        return_exceptions=True,
    )
    accepted = [o for o in outcomes if isinstance(o, OperationRequest)]
    refused = [o for o in outcomes if isinstance(o, ConflictingRestore)]
    assert (len(accepted), len(refused)) == (1, 1), outcomes
    assert refused[0].existing.id == accepted[0].id
    assert [row.request.id for row in store.requests.values()] == [accepted[0].id]


# -- tracking --------------------------------------------------------------------------------


def running(action: Action, **outcome: object) -> OperationRequest:
    return OperationRequest(
        id=1,
        kind=Kind.SNAPSHOT,
        action=action,
        status=Status.RUNNING,
        requester_id=ALICE,
        channel_id=CHANNEL,
        server=ServerRef(SERVER, "web-1"),
        target_id=501,
        target_name="before-update",
        reason="",
        created_at=NOW,
        updated_at=NOW,
        expires_at=NOW + timedelta(hours=6),
        outcome=Outcome(started_at=NOW).but(**outcome),
    )


async def test_a_completed_object_completes_its_create_with_size_and_duration(
    vps: FakeVps, life: Lifecycle
) -> None:
    request = await operations.create(vps, life, AS_ALICE, CreateSnapshot(SERVER, "pre-db"))
    assert request.target_id is not None
    made = replace(vps.snapshots[request.target_id], status=COMPLETED, size_mb=2048)

    verdict = tracking.judge(request, made, NOW + timedelta(seconds=95))

    assert verdict.event is Event.COMPLETE
    assert verdict.outcome.size_mb == 2048
    assert verdict.outcome.took_seconds == 95
    assert verdict.outcome.finished_at == NOW + timedelta(seconds=95)


@pytest.mark.parametrize(
    ("status", "event", "why"),
    [
        (IN_PROGRESS, None, None),
        ("creating", None, None),
        ("error", Event.FAIL, Why.OBJECT_FAILED),
    ],
)
def test_an_unfinished_or_failed_object(status: str, event: Event | None, why: Why | None) -> None:
    request = running(Action.CREATE)
    vps = FakeVps()
    vps.add_server(SERVER, "web-1")
    found = replace(vps.add_snapshot(SERVER, "before-update"), status=status)
    verdict = tracking.judge(request, found, NOW + timedelta(minutes=1))
    assert verdict.event is event
    assert (verdict.outcome.failure.why if verdict.outcome.failure else None) is why


def test_an_object_no_longer_listed_fails_its_create() -> None:
    verdict = tracking.judge(running(Action.CREATE), None, NOW)
    assert verdict.event is Event.FAIL
    assert verdict.outcome.failure == Failure(Why.NOT_LISTED)


async def test_the_tracker_finishes_a_create_once_vpsorg_has_made_it(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request = await operations.create(vps, life, AS_ALICE, CreateSnapshot(SERVER, "pre-db"))
    assert request.target_id is not None
    clock.now = life.policy.next_tick(NOW)
    first = await tracking.check_in_flight(vps, life, "tracker-1")
    assert (first.claimed, first.finished) == (1, 0)
    assert store.request(request.id).status is Status.RUNNING

    made = vps.snapshots[request.target_id]
    vps.snapshots[made.id] = replace(made, status=COMPLETED, size_mb=1536)
    clock.now = life.policy.next_tick(clock.now)
    second = await tracking.check_in_flight(vps, life, "tracker-1")

    assert (second.claimed, second.finished) == (1, 1)
    done = store.request(request.id)
    assert done.status is Status.SUCCEEDED
    assert done.outcome.size_mb == 1536
    assert done.outcome.took_seconds == int((clock.now - NOW).total_seconds())
    assert moves(store, request.id) == [("accept", None), ("complete", None)]
    assert store.queued(request.id)[1:] == [
        ("update", {"event": "succeeded"}, request.id),
        ("reply", {"event": "succeeded"}, request.id),
        ("dm", {"event": "succeeded", "user": ALICE}, request.id),
    ]
    assert vps.paths("GET").count(f"/snapshots/?server_id={SERVER}") == 3  # limit check + 2 reads


def test_a_restore_seen_restoring_then_running_is_done() -> None:
    request = running(Action.RESTORE, seen_restoring=True)
    later = NOW + timedelta(minutes=7)
    verdict = tracking.judge_restore(request, Server(SERVER, "web-1", "running"), later, Policy())
    assert verdict.event is Event.COMPLETE
    assert verdict.outcome.took_seconds == 7 * 60
    assert verdict.outcome.finished_at == later


@pytest.mark.parametrize(
    ("after", "event"),
    [
        (timedelta(minutes=2) - timedelta(microseconds=1), None),  # still giving it time
        (timedelta(minutes=2), Event.LOSE),
        (timedelta(minutes=30), Event.LOSE),
    ],
)
def test_a_restore_never_seen_restoring_needs_a_person(
    after: timedelta, event: Event | None
) -> None:
    policy = Policy(restore_seen_within=timedelta(minutes=2))
    request = running(Action.RESTORE, seen_restoring=False)
    server = Server(SERVER, "web-1", "running")  # the 200 alone: VPS.org never began
    verdict = tracking.judge_restore(request, server, NOW + after, policy)
    assert verdict.event is event
    if event is not None:
        assert verdict.outcome.failure == Failure(Why.NEVER_SEEN_RESTORING, status="running")
        assert verdict.outcome.took_seconds is None  # never "restored"
    else:
        assert verdict.outcome.failure is None


def test_a_restore_seen_restoring_late_is_still_followed() -> None:
    request = running(Action.RESTORE, seen_restoring=False)
    server = Server(SERVER, "web-1", "restoring")
    verdict = tracking.judge_restore(request, server, NOW + timedelta(minutes=3), Policy())
    assert verdict.event is None
    assert verdict.outcome.seen_restoring  # remembered: a later `running` means done
