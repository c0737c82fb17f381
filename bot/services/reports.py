"""Looking back: the restores waiting for a vote, one request's history, the audit trail as rows.

Everything here only reads (through the unit of work's ports). The audit export is one row per
`audit_events` row, in the order they were written, with the request it belongs to (its
server, kind and target) beside it; `to_csv` and `to_jsonl` write those rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.domain.approvals import Vote
from bot.domain.errors import DirectoryUnavailable, UnknownRequest
from bot.domain.lifecycle import Status
from bot.domain.model import Action, OperationRequest
from bot.services.lifecycle import Lifecycle
from bot.services.ports import AuditEvent, Directory, UnitOfWorkFactory
from bot.services.restores import eligible

# -- reading the audit trail ----------------------------------------------------------------------


# -- /vpsbot pending ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    """A restore waiting for approval, as one person sees it: whether they may vote on it now
    (`may_vote`), how they already did (`voted`), and whether they asked for it."""

    request: OperationRequest
    votes: tuple[Vote, ...]
    may_vote: bool
    voted: str | None = None
    unsure: bool = False  # Slack could not say who is in the approvers' user groups


async def pending_restores(life: Lifecycle, directory: Directory, user_id: str) -> list[Pending]:
    """The restores waiting for approval and not yet expired, oldest first."""
    now = life.clock()
    async with life.uow() as uow:
        waiting = [
            request
            for request in await uow.requests.in_status(Status.PENDING_APPROVAL)
            if request.action is Action.RESTORE and not request.is_expired(now)
        ]
        votes = {request.id: await uow.approvals.votes(request.id) for request in waiting}
    found = []
    for request in waiting:
        cast_votes = tuple(votes[request.id])
        voted = next((v.decision for v in cast_votes if v.voter_id == user_id), None)
        unsure = False
        try:
            may = await eligible(life, directory, user_id, request.requester_id)
        except DirectoryUnavailable:
            may, unsure = False, True
        found.append(
            Pending(request, cast_votes, may and voted is None, voted=voted, unsure=unsure)
        )
    return found


# -- /vpsbot request <id> -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class History:
    """A request as it stands and every audit row written about it, oldest first."""

    request: OperationRequest
    events: tuple[AuditEvent, ...]


async def request_history(uow_factory: UnitOfWorkFactory, request_id: int) -> History:
    async with uow_factory() as uow:
        request = await uow.requests.get(request_id)
        if request is None:
            raise UnknownRequest(
                f"vpsbot has no request #{request_id}: use the number its messages end with "
                "(`/vpsbot pending` lists the restores waiting)."
            )
        events = tuple(await uow.audit.events(request_id=request_id))
    return History(request, events)


# -- the audit export -----------------------------------------------------------------------------

COLUMNS = (
    "time",
    "request",
    "event",
    "actor",
    "server_id",
    "server_name",
    "kind",
    "target_id",
    "outcome",
    "detail",
)


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit event, with its request's server, kind and target beside it."""

    time: datetime
    request: int | None
    event: str
    actor: str
    server_id: int | None
    server_name: str
    kind: str
    target_id: int | None
    outcome: str
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "time": iso(self.time),
            "request": self.request,
            "event": self.event,
            "actor": self.actor,
            "server_id": self.server_id,
            "server_name": self.server_name,
            "kind": self.kind,
            "target_id": self.target_id,
            "outcome": self.outcome,
            "detail": self.detail,
        }


def iso(moment: datetime) -> str:
    """UTC, ISO 8601, to the second: `2025-03-04T09:15:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def outcome(event: str, detail: dict[str, Any]) -> str:
    """What came of an audit event, in a word: the status a transition reached, a vote's
    decision, the HTTP status VPS.org answered, a command's outcome, why something was refused."""
    keys = {
        "transition": "to",
        "vote": "decision",
        "api_call": "status",
        "safety_snapshot": "step",
        "refused": "error",
        "card_not_posted": "slack_error",
        "alarm": "alarm",
        "request": "action",
        "schedule": "action",
        "pruned": "how",
        "health_alert": "to",
    }
    value = detail.get(keys.get(event, "outcome"), detail.get("outcome", ""))
    if event == "replay":
        value = "ignored"
    return "" if value is None else str(value)


async def audit_rows(
    uow_factory: UnitOfWorkFactory, *, since: datetime, server_id: int | None = None
) -> list[AuditRow]:
    """The audit events written at or after `since` (of one server's requests, with
    `server_id`), in the order they were written (the window is the database's query)."""
    async with uow_factory() as uow:
        events = list(await uow.audit.events(since=since))
        requests: dict[int, OperationRequest | None] = {}
        for request_id in sorted({e.request_id for e in events if e.request_id is not None}):
            requests[request_id] = await uow.requests.get(request_id)
    rows = []
    for event in events:
        request = requests.get(event.request_id) if event.request_id is not None else None
        server = request.server if request is not None else None
        if server_id is not None and (server is None or server.id != server_id):
            continue
        detail = dict(event.detail or {})
        rows.append(
            AuditRow(
                time=event.created_at,
                request=event.request_id,
                event=event.event,
                actor=event.actor_id or "",
                server_id=server.id if server is not None else None,
                server_name=server.name if server is not None else "",
                kind=request.kind.value if request is not None else "",
                target_id=request.target_id if request is not None else None,
                outcome=outcome(event.event, detail),
                detail=detail,
            )
        )
    return rows


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A CSV cell; text a spreadsheet would run as a formula (a server named `=HYPERLINK(…)`)
    gets a leading `'`, as OWASP advises (CSV injection)."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(rows: Iterable[AuditRow]) -> str:
    """A header, then one line per row (RFC 4180: CRLF, quoted where needed); `detail` is JSON."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            [
                iso(row.time),
                _cell(row.request),
                _cell(row.event),
                _cell(row.actor),
                _cell(row.server_id),
                _cell(row.server_name),
                _cell(row.kind),
                _cell(row.target_id),
                _cell(row.outcome),
                json.dumps(row.detail, ensure_ascii=False, sort_keys=True, default=str),
            ]
        )
    return out.getvalue()


def to_jsonl(rows: Iterable[AuditRow]) -> str:
    """One JSON object per line, with the CSV's columns as keys (`detail` an object)."""
    return "".join(
        json.dumps(row.as_json(), ensure_ascii=False, sort_keys=False, default=str) + "\n"
        for row in rows
    )


__all__ = [
    "COLUMNS",
    "AuditRow",
    "History",
    "Pending",
    "audit_rows",
    "iso",
    "outcome",
    "pending_restores",
    "request_history",
    "to_csv",
    "to_jsonl",
]


@dataclass(frozen=True, slots=True)
class Gauges:
    """What the database holds now, for the metrics: requests by status, the outbox backlog."""

    by_status: dict[str, int]
    backlog: int
    oldest_age: float  # seconds the oldest undelivered message has waited (0: none)


async def gauges(life: Lifecycle) -> Gauges:
    async with life.uow() as uow:
        by_status = await uow.requests.count_by_status()
        backlog, oldest = await uow.outbox.backlog()
    age = 0.0 if oldest is None else max((life.clock() - oldest).total_seconds(), 0.0)
    return Gauges(by_status, backlog, age)
