"""Deliver the outbox: every queued Slack message goes out once, in order per request."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.domain.lifecycle import WAITING, Event
from bot.domain.model import OperationRequest
from bot.domain.outcomes import Failure, Why
from bot.services.lifecycle import Lifecycle, end
from bot.services.ports import DeliveryError, Notifier, OutboxEntry, UnitOfWork

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=30)
MAX_BACKOFF = timedelta(seconds=8)  # pending messages go out within 10 s of Slack recovering

# The event of the message that tells a requester their card could not be posted.
CARD_NOT_POSTED = "card_not_posted"


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # refused by Slack for good
    skipped: int = 0  # updates and replies of a card that was never posted

    @property
    def settled(self) -> int:
        """Rows this round took off the queue (their request's later rows may now go)."""
        return self.sent + self.failed + self.skipped


def backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=0.5 * 2**attempts), MAX_BACKOFF)


def _posts_card(kind: str, request: OperationRequest | None) -> bool:
    """The request's card: its "post", or an update posting it late (notifier.py)."""
    if request is None:
        return False
    return kind == "post" or (kind == "update" and not request.message_ts)


def _without_card(kind: str, request: OperationRequest | None) -> str:
    """The Slack error that kept this request's card out of the channel, when `kind` would act
    on that card (update it, post it late, reply in its thread); "" otherwise."""
    if kind not in ("update", "reply") or request is None or request.message_ts:
        return ""
    return request.asked.card_not_posted


async def _card_not_posted(
    uow: UnitOfWork, item: OutboxEntry, error: DeliveryError, at: datetime
) -> None:
    """Slack refused a request's card in its channel for good. In the caller's transaction:
    remember it, cancel a request that was waiting for a decision on that card (or leave one
    that is already under way at VPS.org to go on), and queue the requester's explanation."""
    if item.request_id is None:
        return
    request = await uow.requests.lock(item.request_id)  # as it is now, not as it was posted
    if request is None:
        return
    # Remembered where nothing else rewrites it: the card never exists, so no later update
    # or thread reply may try to post (or reply to) it.
    await uow.requests.change(request.id, asked=replace(request.asked, card_not_posted=error.code))
    # Waiting for a decision on a card nobody can see: cancelled, so nobody decides it blind.
    failure = Failure(Why.CARD_NOT_POSTED, detail=error.code)
    cancelled = request.status in WAITING and await end(
        uow, request, Event.CANCEL, request.outcome.but(failure=failure), at=at, notify=()
    )
    if not cancelled:
        uow.audit.record(
            "card_not_posted",
            at=at,
            request_id=request.id,
            detail={"slack_error": error.code, "status": request.status.value},
        )
    log.warning(
        "request %d: Slack refused its card in the channel (%s); %s",
        request.id,
        error.code,
        "cancelled it" if cancelled else f"it stays {request.status.value}",
    )
    uow.outbox.add(
        "tell_requester",
        {
            "event": CARD_NOT_POSTED,
            "user": request.requester_id,
            "slack_error": error.code,
            "cancelled": cancelled,
            # in the channel first, where they asked; an operation that goes on: straight to a
            # DM, which stays beside the completion DM
            "ephemeral": cancelled,
        },
        at=at,
        request_id=request.id,
    )


async def deliver_due(life: Lifecycle, notifier: Notifier, owner: str) -> DeliveryReport:
    """Send what is due, oldest first; a row whose earlier rows failed for good goes next
    (the unit of work wakes the sender for rows queued or unblocked here)."""
    report = DeliveryReport()
    async with life.uow() as uow:
        items = await uow.outbox.claim_due(now=life.clock(), owner=owner, lease=LEASE)
        await uow.commit()
    for position, item in enumerate(items):
        async with life.uow() as uow:
            request = None if item.request_id is None else await uow.requests.get(item.request_id)
        if missing := _without_card(item.kind, request):
            async with life.uow() as uow:
                await uow.outbox.mark_failed(
                    item.id, error=f"not sent: the request's card was never posted ({missing})"
                )
                await uow.commit()
            report.skipped += 1
            continue
        try:
            delivery = await notifier.deliver(item.kind, item.payload, request)
        except DeliveryError as error:
            now = life.clock()
            async with life.uow() as uow:
                if error.retryable:
                    await uow.outbox.retry_later(
                        item.id, error=error.reason, at=now + backoff(item.attempts)
                    )
                else:
                    report.failed += 1
                    log.error("outbox %d: Slack refused it for good: %s", item.id, error.reason)
                    await uow.outbox.mark_failed(item.id, error=error.reason)
                    # the same transaction: the failed row no longer holds back the request's
                    # later rows, and the explanation queued here goes out after them
                    if error.channel_unusable and _posts_card(item.kind, request):
                        await _card_not_posted(uow, item, error, now)
                await uow.commit()
            if error.retryable:  # Slack is struggling: hand the rest back and stop this round
                async with life.uow() as uow:
                    await uow.outbox.release([i.id for i in items[position + 1 :]], owner)
                    await uow.commit()
                break
            continue
        async with life.uow() as uow:
            await uow.outbox.mark_sent(item.id, at=life.clock())
            first_post = item.kind in ("post", "update") and request and not request.message_ts
            if first_post and request is not None and delivery.ts:
                await uow.requests.change(request.id, message_ts=delivery.ts)
            await uow.commit()
        report.sent += 1
    return report
