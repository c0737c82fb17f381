"""Typed request records: `params` and `result` rewritten as facts (a failure is a code and its
data; who decided is `decided_by`; dates of the target are `target_*`)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 10:20:00

Earlier versions stored sentences (`reason`, `error`) and the same fact under several names
(`deleted_by`, `denied_by`, `cancelled_by`; `created_at` beside `target_created_at`). Each row
is rewritten in Python, so the conversion is the same on SQLite and PostgreSQL; a sentence
kept from an older row becomes a failure of code `legacy` whose detail is that sentence.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

requests = sa.table(
    "requests",
    sa.column("id", sa.Integer),
    sa.column("params", sa.JSON),
    sa.column("result", sa.JSON),
)

_RECOVERED = (("lists it", "listed"), ("stopped before", "read_back"), ("gone", "gone"))
_DECIDERS = ("deleted_by", "denied_by", "cancelled_by")


def _params(old: dict[str, Any]) -> dict[str, Any]:
    new = {k: v for k, v in old.items() if k not in ("created_at", "size_mb")}
    if "created_at" in old:
        new.setdefault("target_created_at", old["created_at"])
    if "size_mb" in old:
        new.setdefault("target_size_mb", old["size_mb"])
    return new


def _result(old: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "approvers",
        "api_message",
        "started_at",
        "seen_restoring",
        "size_mb",
        "took_seconds",
        "finished_at",
        "poll_failures",
        "first_failure_at",
    )
    new = {k: old[k] for k in keep if k in old}
    for name in _DECIDERS:
        if old.get(name):
            new["decided_by"] = old[name]
    if "deleted_at" in old:
        new.setdefault("finished_at", old["deleted_at"])
    text = str(old.get("recovered") or "")
    for words, code in _RECOVERED:
        if text and words in text:
            new["recovered"] = code
            break
    if old.get("reason") == "card_not_posted":
        new["failure"] = {"why": "card_not_posted", "detail": str(old.get("slack_error", ""))}
    elif old.get("reason") or old.get("error"):
        failure: dict[str, Any] = {
            "why": "legacy",
            "detail": str(old.get("reason") or old.get("error")),
        }
        if isinstance(old.get("api_status"), int):
            failure["http_status"] = old["api_status"]
        new["failure"] = failure
    return new


def _undo_result(new: dict[str, Any]) -> dict[str, Any]:
    old = {k: v for k, v in new.items() if k not in ("failure", "decided_by", "recovered")}
    failure = new.get("failure")
    if isinstance(failure, dict):
        old["reason"] = str(failure.get("detail") or failure.get("why") or "")
    if new.get("decided_by"):
        old["deleted_by"] = new["decided_by"]
    return old


def _rewrite(params: Any, result: Any) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(requests.c.id, requests.c.params, requests.c.result)).all()
    for row in rows:
        bind.execute(
            requests.update()
            .where(requests.c.id == row.id)
            .values(params=params(dict(row.params or {})), result=result(dict(row.result or {})))
        )


def upgrade() -> None:
    _rewrite(_params, _result)


def downgrade() -> None:
    _rewrite(lambda p: p, _undo_result)
