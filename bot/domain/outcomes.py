"""Typed records of what a request asked for and what became of it: facts, never sentences.

Services record what happened (what VPS.org answered, sizes, durations, a failure as a code
with its data); the Slack renderer alone decides the words. Storage keeps them as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Self


class Why(StrEnum):
    """Why a request failed or needs a person."""

    API_REFUSED = "api_refused"  # VPS.org said no to the call: nothing happened
    API_UNCONFIRMED = "api_unconfirmed"  # the call got no usable answer: it may have happened
    STILL_LISTED = "still_listed"  # an unconfirmed delete whose target is still listed
    UNREADABLE_AFTER = "unreadable_after"  # an unconfirmed call, and reading back failed too
    CHECK_FAILED = "check_failed"  # the target could not be checked before a restore
    TARGET_MOVED = "target_moved"  # the snapshot or backup now belongs to another server
    TARGET_INCOMPLETE = "target_incomplete"  # ... is not `completed` (status)
    TARGET_CHANGED = "target_changed"  # the snapshot's name changed since the request
    SERVER_BUSY = "server_busy"  # the server is already restoring
    NOT_LISTED = "not_listed"  # the object (or the server) is no longer listed
    OBJECT_FAILED = "object_failed"  # VPS.org reports the object in a failed status (status)
    SERVER_FAILED = "server_failed"  # the restored server is in a failed status (status)
    NEVER_SEEN_RESTORING = "never_seen_restoring"  # accepted, but never seen restoring (status)
    UNREADABLE = "unreadable"  # the server could not be read `count` times over `seconds`
    STOPPED_FOLLOWING = "stopped_following"  # still working when the follow window closed
    BOT_STOPPED = "bot_stopped"  # the bot stopped while it was sending the call
    CARD_NOT_POSTED = "card_not_posted"  # Slack refused the request's card (detail: its error)
    # The safety snapshot promised on the card could not be had, so nothing was restored:
    SAFETY_LIMIT = "safety_limit"  # the server had `count` snapshots, VPS.org's limit
    SAFETY_REFUSED = "safety_refused"  # VPS.org refused the POST (detail)
    SAFETY_FAILED = "safety_failed"  # it ended in another status than `completed` (status)
    SAFETY_GONE = "safety_gone"  # it is no longer listed (or no longer the bot's)
    SAFETY_TIMEOUT = "safety_timeout"  # still not complete after `seconds` (status, or detail)
    SAFETY_UNCONFIRMED = "safety_unconfirmed"  # its POST got no usable answer and none is listed
    SAFETY_NAME_TAKEN = "safety_name_taken"  # a snapshot the bot did not make has its name
    # A scheduled run was not started: the server had `count` of VPS.org's limit and its
    # oldest (detail: its name) is not this schedule's to delete
    SCHEDULE_SKIPPED = "schedule_skipped"
    RESUMED_LATE = "resumed_late"  # the bot stopped `seconds` before it could restore
    LEGACY = "legacy"  # recorded as a sentence by an older version (detail: that sentence)


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure as a code and its data. `detail` holds words from outside (VPS.org's error,
    Slack's error code), never the bot's own; `status` a status VPS.org reported."""

    why: Why
    detail: str = ""
    http_status: int | None = None
    status: str = ""  # an object's or a server's status, or "" when not read
    read_detail: str = ""  # why a read-back failed, when one did
    count: int = 0
    seconds: int = 0


class Recovery(StrEnum):
    """How the bot learnt that an unconfirmed call had worked after all."""

    LISTED = "listed"  # the create's answer was lost, but VPS.org lists the new object
    READ_BACK = "read_back"  # the bot stopped before recording it; found by name at start
    GONE = "gone"  # the delete's answer was lost, but the target is gone


class SafetyPlan(StrEnum):
    """What the approval card said about a safety snapshot: the plan the approvers approved."""

    PLANNED = "planned"  # one is taken before the restore, and no restore without it
    AT_LIMIT = "at_limit"  # the server already had as many snapshots as VPS.org allows: none
    OFF = "off"  # VPSBOT_SAFETY_SNAPSHOT=false: none


class SafetyStep(StrEnum):
    """How far an executing restore has got with its safety snapshot (Outcome.safety_step)."""

    POSTING = "posting"  # committed before its one POST /snapshots/: it may have been sent
    FOLLOWING = "following"  # VPS.org took it (Outcome.safety_id): waiting for `completed`
    READY = "ready"  # seen `completed`: from here on the restore call may have been sent


class SafetyRemoval(StrEnum):
    """How the bot let go of a safety snapshot it made."""

    DELETED = "deleted"  # deleted by the bot after VPSBOT_SAFETY_SNAPSHOT_DAYS
    GONE = "gone"  # already gone when the bot came to delete it (someone deleted it)
    NOT_OURS = "not_ours"  # its id now names another snapshot: left alone


@dataclass(frozen=True, slots=True)
class Asked:
    """What the request was about when it was made (never rewritten after, but for
    `card_not_posted`)."""

    name: str = ""  # a snapshot's name
    description: str = ""
    known_ids: tuple[int, ...] = ()  # the ids that existed before a create's POST
    target_created_at: datetime | None = None  # when the snapshot or backup was taken
    target_size_mb: int | None = None
    target_status: str = ""
    target_expires_at: datetime | None = None  # when the backup expires (automatic backups)
    card_not_posted: str = ""  # Slack's error when the request's card could not be posted
    safety: SafetyPlan | None = None  # a restore's safety snapshot (None: before there were any)
    server_snapshots: int | None = None  # how many snapshots the server had when asked
    undo_of: int | None = None  # the request whose restore this one undoes
    schedule_id: int | None = None  # a scheduled run: its schedule (its card is its one message)
    schedule_when: str = ""  # the schedule's `when` at the run, as people read it
    schedule_keep: int = 0  # how many of its own the schedule keeps


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of the request so far."""

    approvers: tuple[str, ...] = ()  # in the order they approved
    decided_by: str | None = None  # who denied, cancelled or confirmed it
    api_message: str = ""  # VPS.org's own message when it accepted the call
    started_at: datetime | None = None  # when VPS.org accepted it
    seen_restoring: bool = False
    size_mb: int | None = None
    took_seconds: int | None = None
    finished_at: datetime | None = None
    failure: Failure | None = None
    recovered: Recovery | None = None
    poll_failures: int = 0  # reads in a row that told nothing
    first_failure_at: datetime | None = None
    safety_step: SafetyStep | None = None  # a restore's safety snapshot, while it executes
    safety_id: int | None = None  # the safety snapshot VPS.org made
    safety_asked_at: datetime | None = None  # when its POST was about to be sent (`posting`)
    safety_looked_at: datetime | None = None  # the tracker's last look at it while it was made
    safety_taken_at: datetime | None = None  # when VPS.org took its POST
    safety_ready_at: datetime | None = None  # when it was seen `completed`
    safety_keep_until: datetime | None = None  # when the bot deletes it
    safety_removed: SafetyRemoval | None = None  # how the bot let go of it
    safety_removed_at: datetime | None = None
    reminded_at: datetime | None = None  # when a waiting restore's one reminder was queued
    deny_reason: str = ""  # what the approver who denied it said (optional)
    # A scheduled run: what retention deleted on its account (ids and names, oldest first),
    # how many of the schedule's own it then left, and why it could not delete (VPS.org's words)
    pruned_ids: tuple[int, ...] = ()
    pruned_names: tuple[str, ...] = ()
    kept: int | None = None
    prune_failed: str = ""

    def but(self, **changes: object) -> Self:
        """A copy with `changes` (dataclasses.replace, named for reading)."""
        return replace(self, **changes)  # type: ignore[arg-type]
