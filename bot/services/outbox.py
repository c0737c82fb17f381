"""Deliver the outbox: every queued Slack message goes out once, in order per request."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from bot.services import Services
from bot.services.ports import DeliveryError, Notifier

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=30)
MAX_BACKOFF = timedelta(seconds=8)  # pending messages go out within 10 s of Slack recovering


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=0.5 * 2**attempts), MAX_BACKOFF)


async def deliver_due(services: Services, notifier: Notifier, owner: str) -> DeliveryReport:
    report = DeliveryReport()
    async with services.uow() as uow:
        items = await uow.outbox.claim_due(now=services.clock(), owner=owner, lease=LEASE)
        await uow.commit()
    for position, item in enumerate(items):
        async with services.uow() as uow:
            request = None if item.request_id is None else await uow.requests.get(item.request_id)
        try:
            delivery = await notifier.deliver(item.kind, item.payload, request)
        except DeliveryError as error:
            now = services.clock()
            async with services.uow() as uow:
                if error.retryable:
                    report.retried += 1
                    await uow.outbox.retry_later(
                        item.id, error=error.reason, at=now + backoff(item.attempts)
                    )
                else:
                    report.failed += 1
                    log.error("outbox %d: Slack refused it for good: %s", item.id, error.reason)
                    await uow.outbox.mark_failed(item.id, error=error.reason)
                await uow.commit()
            if error.retryable:  # Slack is struggling: hand the rest back and stop this round
                async with services.uow() as uow:
                    await uow.outbox.release([i.id for i in items[position + 1 :]], owner)
                    await uow.commit()
                break
            continue
        async with services.uow() as uow:
            await uow.outbox.mark_sent(item.id, at=services.clock())
            first_post = item.kind in ("post", "update") and request and not request.message_ts
            if first_post and request is not None and delivery.ts:
                await uow.requests.change(request.id, message_ts=delivery.ts)
            await uow.commit()
        report.sent += 1
    return report
