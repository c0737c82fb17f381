"""The bot's records: requests, approvals (one row per vote), audit_events (append-only), outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


RESTORE_UNDER_WAY = "action = 'restore' AND status IN ('approved', 'executing', 'running')"
SCHEDULE_KEPT = "schedule_id IS NOT NULL AND status = 'succeeded' AND pruned_at IS NULL"


class RequestRecord(Base):
    """One thing a person asked the bot to do to a server, and where it stands."""

    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # snapshot | backup
    action: Mapped[str] = mapped_column(String(16))  # create | delete | restore
    status: Mapped[str] = mapped_column(String(24))
    requester_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    server_id: Mapped[int | None] = mapped_column(BigInteger)  # VPS.org ids reach 10 digits
    server_name: Mapped[str] = mapped_column(String(255), default="")
    target_id: Mapped[int | None] = mapped_column(BigInteger)
    target_name: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message_ts: Mapped[str | None] = mapped_column(String(32))
    required_approvals: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    next_check_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    # When the bot deletes the safety snapshot this restore made (null: none to delete): kept
    # as a column, indexed, so the clean-up finds the due ones without reading every request.
    safety_delete_at: Mapped[datetime | None] = mapped_column(index=True)
    # A scheduled run: the schedule it ran for (null: a person's request), and when the bot
    # let go of what it made (retention deleted it, or it was found gone).
    schedule_id: Mapped[int | None]
    pruned_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_requests_status_next_check", "status", "next_check_at"),
        # At most one restore per server may be under way, whatever the instances: the move to
        # `executing` of a second one violates this index and is refused (compare-and-set).
        Index(
            "uq_requests_one_restore_per_server",
            "server_id",
            unique=True,
            postgresql_where=text(RESTORE_UNDER_WAY),
            sqlite_where=text(RESTORE_UNDER_WAY),
        ),
        # A schedule's runs, newest first (its last run: one index probe, however many it made)
        Index("ix_requests_schedule_runs", "schedule_id", "id"),
        # What the schedules keep (retention checks it every tick): only the live items
        Index(
            "ix_requests_schedule_kept",
            "schedule_id",
            postgresql_where=text(SCHEDULE_KEPT),
            sqlite_where=text(SCHEDULE_KEPT),
        ),
    )


class ScheduleRecord(Base):
    """A recurring snapshot or manual backup of one server, with how many of its own to keep.
    Unscheduling sets `removed_at`: the row and its runs stay, for the audit trail."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # snapshot | backup
    server_id: Mapped[int] = mapped_column(BigInteger, index=True)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    channel_id: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(32))
    spec: Mapped[str] = mapped_column(String(255))  # when, canonical: "daily 03:00"
    keep: Mapped[int]
    created_at: Mapped[datetime]
    next_run_at: Mapped[datetime]
    # retention found nothing it could delete (VPS.org refused): not tried again before this
    prune_after: Mapped[datetime | None]
    removed_at: Mapped[datetime | None]
    removed_by: Mapped[str | None] = mapped_column(String(32))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]

    __table_args__ = (Index("ix_schedules_removed_next_run", "removed_at", "next_run_at"),)


class ServerHealthRecord(Base):
    """The health each server was last seen in (ok | stale | failed): an alert is posted when
    a check moves it, by the one transaction whose compare-and-set wins."""

    __tablename__ = "server_health"

    server_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime]
    checked_at: Mapped[datetime]


class JobRecord(Base):
    """A periodic job run by one instance at a time: whoever moves `next_run_at` runs it."""

    __tablename__ = "jobs"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_run_at: Mapped[datetime]


class ApprovalRecord(Base):
    """One vote on a request; a person votes at most once."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    voter_id: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))  # approve | deny
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("request_id", "voter_id"),)


class AuditRecord(Base):
    """Append-only history: commands, votes, transitions, API calls, results."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(32), index=True)
    actor_id: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[int | None] = mapped_column(index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OutboxRecord(Base):
    """A Slack message to deliver, committed with the state change that causes it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime]
    request_id: Mapped[int | None] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(16))  # post | update | reply | dm
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]

    __table_args__ = (Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),)


class SlackDelivery(Base):
    """The identity of each Slack request acted on (its trigger_id, or a hash of the signed
    body), kept past Slack's 5-minute replay window: a retried or replayed request finds its
    key taken and is not acted on again, on any instance."""

    __tablename__ = "slack_deliveries"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(index=True)


metadata = Base.metadata
