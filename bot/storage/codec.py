"""The typed request records (`Asked`, `Outcome`) as the JSON kept in `params` and `result`.

Keys are the field names; datetimes are ISO 8601; absent or empty values are left out, so a
row holds only what is known. Unknown keys are ignored (a newer version may add some).
Migration 0003 rewrote the rows of earlier versions into this shape.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from bot.domain.outcomes import (
    Asked,
    Failure,
    Outcome,
    Recovery,
    SafetyPlan,
    SafetyRemoval,
    SafetyStep,
    Why,
)

E = TypeVar("E", bound=StrEnum)


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Failure):
        return {k: v for k, v in _items(value) if not _empty(v) and v != 0}
    if isinstance(value, StrEnum):
        return value.value
    return value


def _items(record: object) -> list[tuple[str, object]]:
    return [(f.name, _plain(getattr(record, f.name))) for f in fields(record)]  # type: ignore[arg-type]


def _empty(value: object) -> bool:
    """Nothing worth keeping: None, "", [], False (but 0 is a value: 0 MB, 0 s)."""
    return value is None or value is False or value == "" or value == []


def _dump(record: Asked | Outcome) -> dict[str, Any]:
    return {name: value for name, value in _items(record) if not _empty(value)}


def dump_asked(asked: Asked) -> dict[str, Any]:
    return _dump(asked)


def dump_outcome(outcome: Outcome) -> dict[str, Any]:
    out = _dump(outcome)
    if not outcome.poll_failures:
        out.pop("poll_failures", None)
    return out


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _enum(kind: type[E], value: object) -> E | None:
    """A stored enum value; None when absent or unknown (a newer version's)."""
    return kind(value) if isinstance(value, str) and value in set(kind) else None


def _ids(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _numbers(value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(n for n in (_int(v) for v in value) if n is not None)


def load_failure(value: object) -> Failure | None:
    if not isinstance(value, dict):
        return None
    code = value.get("why")
    why = Why(code) if code in set(Why) else Why.LEGACY
    return Failure(
        why,
        detail=_text(value.get("detail")),
        http_status=_int(value.get("http_status")),
        status=_text(value.get("status")),
        read_detail=_text(value.get("read_detail")),
        count=_int(value.get("count")) or 0,
        seconds=_int(value.get("seconds")) or 0,
    )


def load_asked(data: dict[str, Any]) -> Asked:
    known = data.get("known_ids")
    return Asked(
        name=_text(data.get("name")),
        description=_text(data.get("description")),
        known_ids=_numbers(known),
        target_created_at=_moment(data.get("target_created_at")),
        target_size_mb=_int(data.get("target_size_mb")),
        target_status=_text(data.get("target_status")),
        target_expires_at=_moment(data.get("target_expires_at")),
        card_not_posted=_text(data.get("card_not_posted")),
        safety=_enum(SafetyPlan, data.get("safety")),
        server_snapshots=_int(data.get("server_snapshots")),
        undo_of=_int(data.get("undo_of")),
        schedule_id=_int(data.get("schedule_id")),
        schedule_when=_text(data.get("schedule_when")),
        schedule_keep=_int(data.get("schedule_keep")) or 0,
    )


def load_outcome(data: dict[str, Any]) -> Outcome:
    decided_by = data.get("decided_by")
    return Outcome(
        approvers=_ids(data.get("approvers")),
        decided_by=decided_by if isinstance(decided_by, str) and decided_by else None,
        api_message=_text(data.get("api_message")),
        started_at=_moment(data.get("started_at")),
        seen_restoring=data.get("seen_restoring") is True,
        size_mb=_int(data.get("size_mb")),
        took_seconds=_int(data.get("took_seconds")),
        finished_at=_moment(data.get("finished_at")),
        failure=load_failure(data.get("failure")),
        recovered=_enum(Recovery, data.get("recovered")),
        poll_failures=_int(data.get("poll_failures")) or 0,
        first_failure_at=_moment(data.get("first_failure_at")),
        safety_step=_enum(SafetyStep, data.get("safety_step")),
        safety_id=_int(data.get("safety_id")),
        safety_asked_at=_moment(data.get("safety_asked_at")),
        safety_looked_at=_moment(data.get("safety_looked_at")),
        safety_taken_at=_moment(data.get("safety_taken_at")),
        safety_ready_at=_moment(data.get("safety_ready_at")),
        safety_keep_until=_moment(data.get("safety_keep_until")),
        safety_removed=_enum(SafetyRemoval, data.get("safety_removed")),
        safety_removed_at=_moment(data.get("safety_removed_at")),
        reminded_at=_moment(data.get("reminded_at")),
        deny_reason=_text(data.get("deny_reason")),
        pruned_ids=_numbers(data.get("pruned_ids")),
        pruned_names=_ids(data.get("pruned_names")),
        kept=_int(data.get("kept")),
        prune_failed=_text(data.get("prune_failed")),
    )
