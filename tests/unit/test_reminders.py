"""The reminder of a restore waiting for approval, decided by the tracker with the clock told
where it is (the in-memory store of tests/fakes/memory.py): one reminder, none after a decision,
none when off, requests from before reminders handled, and expiry still on time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk.models.views import View

from bot.config import Settings
from bot.domain.lifecycle import Status
from bot.domain.model import OperationRequest
from bot.services import reminders, restores
from bot.services.lifecycle import Lifecycle, Policy
from bot.slack.blocks.requests import deny_modal, outcome_message, reminder_message, request_message
from tests.fakes.memory import FakeVps, MemoryStore
from tests.fakes.slack import block_kit_errors, validate_deep
from tests.unit.test_use_cases import (
    ALICE,
    BOB,
    CHANNEL,
    NOBODY,
    NOW,
    Clock,
    ask_restore,
    lifecycle,
)


@pytest.fixture
def life(store: MemoryStore, clock: Clock) -> Lifecycle:
    return lifecycle(store, clock)  # the defaults: reminded after half the 30 minutes


def reminded(store: MemoryStore, request_id: int) -> list[dict[str, object]]:
    return [p for kind, p, _ in store.queued(request_id) if kind == reminders.REMIND]


def test_the_default_reminder_is_half_the_approval_time_and_zero_turns_it_off() -> None:
    assert Policy(approval_ttl=timedelta(minutes=30)).reminder_delay == timedelta(minutes=15)
    assert Policy(reminder_after=timedelta(minutes=5)).reminder_delay == timedelta(minutes=5)
    assert Policy(reminder_after=timedelta(0)).reminder_delay is None
    assert Settings(vpsbot_approval_ttl=20).reminder_after == 10
    assert Settings(vpsbot_approval_ttl=20, vpsbot_reminder_after=0).reminder_after == 0


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_a_bad_reminder_setting_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import ConfigError, load_settings

    monkeypatch.setenv("VPSBOT_REMINDER_AFTER", value)
    with pytest.raises(ConfigError, match="VPSBOT_REMINDER_AFTER is invalid: expected"):
        load_settings()


async def test_a_waiting_restore_gets_one_reminder_once_its_time_has_come(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request, _ = await ask_restore(vps, life)
    assert store.requests[request.id].next_check_at == NOW + timedelta(minutes=15)

    clock.now = NOW + timedelta(minutes=14, seconds=59)
    assert await reminders.remind_due(life) == 0
    clock.now = NOW + timedelta(minutes=15)
    assert await reminders.remind_due(life) == 1
    assert reminded(store, request.id) == [{"event": "remind", "approvers": []}]
    assert store.request(request.id).outcome.reminded_at == clock.now
    assert store.audit_rows("reminder", request_id=request.id)
    # later ticks: never a second one, and the row waits for its expiry only
    assert store.requests[request.id].next_check_at == request.expires_at
    for minutes in (16, 20, 29):
        clock.now = NOW + timedelta(minutes=minutes)
        assert await reminders.remind_due(life) == 0
    assert len(reminded(store, request.id)) == 1


async def test_expiry_stays_on_time_and_the_requester_is_told(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request, _ = await ask_restore(vps, life)
    clock.now = NOW + timedelta(minutes=15)
    await reminders.remind_due(life)
    clock.now = NOW + timedelta(minutes=30)  # the expiry, to the second
    assert await restores.expire_due(life) == 1
    assert store.request(request.id).status is Status.EXPIRED
    assert store.queued(request.id)[-1] == ("dm", {"event": "expired", "user": ALICE}, request.id)


async def test_no_reminder_for_a_request_decided_before_its_time(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    denied, _ = await ask_restore(vps, life)
    clock.now = NOW + timedelta(minutes=5)
    await restores.deny(life, NOBODY, BOB, denied.id, CHANNEL, reason="not during the sale")
    assert store.request(denied.id).outcome.deny_reason == "not during the sale"
    clock.now = NOW + timedelta(minutes=15)
    assert await reminders.remind_due(life) == 0
    assert reminded(store, denied.id) == []


async def test_a_reminder_is_never_due_once_decided_reminded_or_expired(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request, _ = await ask_restore(vps, life)
    policy, due = life.policy, NOW + timedelta(minutes=15)
    assert reminders.reminder_due(request, policy, due)
    assert not reminders.reminder_due(request, policy, due - timedelta(seconds=1))
    outcome = request.outcome
    for other in (
        _with(request, status=Status.DENIED),
        _with(request, status=Status.CANCELLED),
        _with(request, status=Status.EXECUTING),
        _with(request, outcome=outcome.but(reminded_at=due)),
    ):
        assert not reminders.reminder_due(other, policy, due)
    assert request.expires_at is not None
    assert not reminders.reminder_due(request, policy, request.expires_at)


def _with(request: OperationRequest, **changes: object) -> OperationRequest:
    from dataclasses import replace

    return replace(request, **changes)  # type: ignore[arg-type]


async def test_reminders_off_change_nothing(vps: FakeVps, store: MemoryStore, clock: Clock) -> None:
    life = lifecycle(store, clock, reminder_after=timedelta(0))
    request, _ = await ask_restore(vps, life)
    assert store.requests[request.id].next_check_at is None  # as before reminders
    clock.now = NOW + timedelta(minutes=20)
    assert await reminders.remind_due(life) == 0
    assert reminded(store, request.id) == []


async def test_a_reminder_later_than_the_expiry_never_delays_it(
    vps: FakeVps, store: MemoryStore, clock: Clock
) -> None:
    life = lifecycle(store, clock, reminder_after=timedelta(hours=2))
    request, _ = await ask_restore(vps, life)
    assert store.requests[request.id].next_check_at == request.expires_at
    clock.now = NOW + timedelta(minutes=30)
    assert await reminders.remind_due(life) == 0
    assert await restores.expire_due(life) == 1


async def test_requests_asked_before_reminders_are_reminded_once_when_due(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    early, _ = await ask_restore(vps, life)
    store.requests[early.id].next_check_at = None  # as a row of the previous version
    clock.now = NOW + timedelta(minutes=5)  # not due yet: given the moment it will be
    assert await reminders.remind_due(life) == 0
    assert store.requests[early.id].next_check_at == NOW + timedelta(minutes=15)
    assert store.requests[early.id].lease_owner is None
    clock.now = NOW + timedelta(minutes=20)
    assert await reminders.remind_due(life) == 1
    assert await reminders.remind_due(life) == 0
    assert len(reminded(store, early.id)) == 1


async def test_an_approved_restore_is_no_longer_waiting_for_its_reminder(
    vps: FakeVps, store: MemoryStore, clock: Clock
) -> None:
    """The vote that claims it clears next_check_at: should this instance die before the call,
    the tracker takes the restore over at once, not when its reminder would have been due."""
    life = lifecycle(store, clock, required_approvals=2)
    request, _ = await ask_restore(vps, life)
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    assert store.requests[request.id].next_check_at is not None  # one vote: still waiting

    async def dies(*_: object) -> None:
        raise RuntimeError("the process dies mid-call")

    vps.restore_snapshot = dies  # type: ignore[assignment,method-assign]
    with pytest.raises(RuntimeError):
        await restores.approve(vps, life, NOBODY, "U0CAROL", request.id, CHANNEL)
    assert store.request(request.id).status is Status.EXECUTING
    assert store.requests[request.id].next_check_at is None


# -- what people read ----------------------------------------------------------------------------


async def test_the_reminder_names_who_may_approve_and_when_it_expires(
    vps: FakeVps, life: Lifecycle
) -> None:
    request, _ = await ask_restore(vps, life)
    listed = reminder_message(request, ["U0BOB", "S0OPS"], NOW + timedelta(minutes=15))
    text = listed.blocks[0]["text"]["text"]
    assert "<@U0BOB>, <!subteam^S0OPS> (not <@U0ALICE>)" in text
    assert "still needs *1 more approval*" in text
    assert request.expires_at is not None
    assert f"<!date^{int(request.expires_at.timestamp())}^" in text
    assert "in 15 minutes" in text
    anyone = reminder_message(request, [], NOW).blocks[0]["text"]["text"]
    assert "Who can approve: anyone but <@U0ALICE>." in anyone
    assert block_kit_errors(listed.blocks) == []


async def test_a_denial_shows_its_reason_on_the_card_and_in_the_dm(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    request, _ = await ask_restore(vps, life)
    await restores.deny(
        life, NOBODY, BOB, request.id, CHANNEL, reason="  wait for\nthe <!here> sale "
    )
    denied = store.request(request.id)
    assert denied.outcome.deny_reason == "wait for the <!here> sale"
    card = request_message(denied, NOW).blocks[0]["text"]["text"]
    assert "denied the restore" in card
    assert "Reason: “wait for the &lt;!here&gt; sale”" in card
    dm = outcome_message(replace_ts(denied), NOW, direct=True).text
    assert "was denied by <@U0BOB>: “wait for the &lt;!here&gt; sale”" in dm
    vote = store.audit_rows("vote", request_id=request.id)[-1]
    assert vote.detail == {"decision": "deny", "reason": "wait for the <!here> sale"}


def replace_ts(request: OperationRequest) -> OperationRequest:
    return _with(request, message_ts="1700000000.000100")


async def test_a_forged_reason_too_long_or_with_control_characters_denies_nothing(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    from bot.domain.errors import UsageError

    request, _ = await ask_restore(vps, life)
    for reason in ("x" * 501, "no\x00pe"):
        with pytest.raises(UsageError, match="nothing was denied"):
            await restores.deny(life, NOBODY, BOB, request.id, CHANNEL, reason=reason)
    assert store.request(request.id).status is Status.PENDING_APPROVAL
    # an emoji sequence is plain text (its joiner kept); a bidirectional override is not
    with pytest.raises(UsageError):
        await restores.deny(life, NOBODY, BOB, request.id, CHANNEL, reason="ok\u202eevil")
    await restores.deny(life, NOBODY, BOB, request.id, CHANNEL, reason="deploy 👨\u200d💻 on")
    denied = store.request(request.id)
    assert denied.status is Status.DENIED
    assert denied.outcome.deny_reason == "deploy 👨\u200d💻 on"


def test_the_deny_modal_is_valid_and_carries_the_request_and_channel() -> None:
    view = deny_modal(42, "C0TEST")
    parsed = View(**view)
    validate_deep(parsed)
    assert view["callback_id"] == "restore_deny_reason"
    assert view["private_metadata"] == '{"request": 42, "channel": "C0TEST"}'
    [field] = [b for b in view["blocks"] if b["type"] == "input"]
    assert field["optional"] is True
    assert field["element"]["max_length"] == 500


async def test_deny_asks_a_reason_of_an_approver_but_not_of_the_requester(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request, _ = await ask_restore(vps, life)
    assert await restores.asks_reason(life, request.id, BOB)
    assert not await restores.asks_reason(life, request.id, ALICE)  # theirs: a Cancel
    assert not await restores.asks_reason(life, 999, BOB)
    assert request.expires_at is not None
    clock.now = request.expires_at
    assert not await restores.asks_reason(life, request.id, BOB)  # refused at once
