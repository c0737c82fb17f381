"""Schedules on Slack: the channel's note when one is added or removed, `/snapshot schedules`
(and `/backup schedules`), and the last run of a schedule in a line."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from bot.domain.lifecycle import UNDER_WAY, Status
from bot.domain.model import Kind, OperationRequest, Schedule, run_description, run_name
from bot.services.schedules import Listed
from bot.slack.blocks.requests import is_skipped, short_reason, timing
from bot.slack.blocks.text import (
    MAX_BLOCKS,
    MAX_FALLBACK,
    Block,
    Message,
    ago,
    clip,
    context,
    escape,
    safe,
    section,
    server_label,
    user,
)

# A header, the schedules, the note of those left out and the footer: within 50 blocks.
MAX_LISTED = MAX_BLOCKS - 5


def zone(tz: tzinfo, at: datetime) -> str:
    """The time zone's name: its zoneinfo key (`Europe/Tallinn`), else its abbreviation at
    `at` (`UTC`)."""
    key = getattr(tz, "key", None)
    if isinstance(key, str) and key:
        return key
    return at.astimezone(tz).tzname() or "UTC"


def local(moment: datetime, tz: tzinfo) -> str:
    """`Sat 2026-12-05 03:00`: the moment in `tz`."""
    return moment.astimezone(tz).strftime("%a %Y-%m-%d %H:%M")


def noun(kind: Kind) -> str:
    """What a schedule of `kind` takes: `snapshot`, `manual backup`."""
    return "snapshot" if kind is Kind.SNAPSHOT else "manual backup"


def _newest(kind: Kind, keep: int) -> str:
    """`its newest 3 snapshots`, `its newest manual backup`."""
    return f"its newest {noun(kind)}" if keep == 1 else f"its newest {keep} {noun(kind)}s"


def _naming(schedule: Schedule) -> str:
    stamp = "YYYYMMDD-HHMM"
    if schedule.kind is Kind.SNAPSHOT:
        return f"Each snapshot it takes is named `{run_name(schedule.id, stamp)}` (UTC)."
    described = run_description(schedule.kind, schedule.id, stamp)
    return f"Each manual backup it takes is described “{described}” (UTC)."


def _next(moment: datetime, tz: tzinfo, now: datetime) -> str:
    """`Sat 2026-12-05 03:00 (in 5 hours)`, or `due now` for a run whose time has come."""
    if moment <= now:
        return f"{local(moment, tz)} (due now)"
    return f"{local(moment, tz)} ({ago(moment, now)})"


def schedule_added(schedule: Schedule, next_run: datetime, tz: tzinfo) -> Message:
    """In the channel: who scheduled what, when it runs, what it keeps, how to stop it."""
    kind = schedule.kind.value
    name = safe(zone(tz, next_run), 60)
    head = (
        f":calendar: {user(schedule.created_by)} scheduled {noun(schedule.kind)}s of "
        f"{server_label(schedule.server)}: {timing(schedule.when)} {name} — schedule "
        f"*#{schedule.id}*."
    )
    text = (
        f"{head}\n*Next run:* {local(next_run, tz)} {name} "
        f"({ago(next_run, schedule.created_at)}).\n"
        f"It keeps {_newest(schedule.kind, schedule.keep)}; older ones it made are deleted; it "
        f"never deletes anything it did not make. {_naming(schedule)}\n"
        f"Stop it with `/{kind} unschedule {schedule.id}` (what it made is kept)."
    )
    note = f"`/{kind} schedules` lists the {kind} schedules · times in {name}"
    return Message(clip(head, MAX_FALLBACK), [section(text), context(note)], public=True)


def schedule_removed(schedule: Schedule, by: str, kept: int) -> Message:
    """In the channel: the schedule is stopped; what it made stays, and how to delete it."""
    kind, made = schedule.kind.value, noun(schedule.kind)
    delete = escape(f"`/{kind} delete <{kind}_id>`")
    if kept <= 0:
        left = f"none of the {made}s it made is left to keep."
    elif kept == 1:
        left = f"the {made} it made is kept (delete it with {delete})."
    else:
        left = f"the {kept} {made}s it made are kept (delete them with {delete})."
    manual = " manual" if schedule.kind is Kind.BACKUP else ""
    text = (
        f":stop_button: Schedule *#{schedule.id}* ({made}s of {server_label(schedule.server)}, "
        f"{timing(schedule.when)}) was unscheduled by {user(by)}; {left}"
    )
    note = f"`/{kind} list {schedule.server.id}{manual}` lists what the server holds"
    return Message(clip(text, MAX_FALLBACK), [section(text), context(note)], public=True)


def _made(run: OperationRequest) -> str:
    """`auto-3-20261205-0300`, or a backup's id ("" while VPS.org has given none)."""
    if run.kind is Kind.SNAPSHOT and (run.asked.name or run.target_name):
        return f"`{safe(run.asked.name or run.target_name, 100)}`"
    return f"id `{run.target_id}`" if run.target_id is not None else ""


def last_run(run: OperationRequest | None, now: datetime) -> str:
    """A schedule's latest run in a line: how it went, when, and what it made or why not."""
    if run is None:
        return "none yet"
    at, made = ago(run.created_at, now), _made(run)
    status = run.status
    if status is Status.SUCCEEDED:
        return f":white_check_mark: {at}" + (f", {made}" if made else "")
    if status in UNDER_WAY:
        return f":hourglass_flowing_sand: {at}, in progress" + (f", {made}" if made else "")
    if is_skipped(run):
        return f":fast_forward: {at}, skipped: {short_reason(run)}"
    if status is Status.FAILED:
        return f":x: {at}, failed: {short_reason(run)}"
    if status is Status.NEEDS_ATTENTION:
        return f":warning: {at}, needs attention: {short_reason(run)}"
    return f"{at}, {status.value.replace('_', ' ')}"


def _schedule_line(item: Listed, now: datetime, tz: tzinfo) -> str:
    schedule = item.schedule
    return (
        f"*#{schedule.id}* · {server_label(schedule.server)} · {timing(schedule.when)} · "
        f"keeps {schedule.keep}\n"
        f"Next run: {_next(schedule.next_run_at, tz, now)} · last run: "
        f"{last_run(item.last_run, now)} · by {user(schedule.created_by)}"
    )


def schedules_list(
    kind: Kind, listed: Sequence[Listed], now: datetime, tz: tzinfo, server_id: int | None
) -> Message:
    """The active schedules of `kind` (of one server), each with its next and last run."""
    title = f"{kind.value.capitalize()} schedules"
    if server_id is None:
        where = ", all servers"
    elif listed:
        where = f" of {server_label(listed[0].schedule.server)}"
    else:
        where = f" of server `{server_id}`"
    name = safe(zone(tz, now), 60)
    if not listed:
        usage = escape(f"`/{kind.value} schedule <server_id> <when> keep <N>`")
        example = f"`/{kind.value} schedule {server_id or 12345} daily 03:00 keep 3`"
        text = (
            f"No {kind.value} schedules{where}. Add one with {usage}, e.g. {example} "
            f"(times in {name})."
        )
        return Message(clip(text, MAX_FALLBACK), [section(text)])
    count = len(listed)
    blocks: list[Block] = [section(f":calendar: *{title}*{where}: {count}")]
    blocks += [section(_schedule_line(item, now, tz)) for item in listed[:MAX_LISTED]]
    if count > MAX_LISTED:
        rest = listed[MAX_LISTED:]
        ids = ", ".join(f"#{item.schedule.id}" for item in rest[:100])
        blocks.append(context(f"…and {len(rest)} more: {ids}"))
    stop = escape(f"`/{kind.value} unschedule <id>`")
    blocks.append(context(f"Times in {name} · {stop} stops one; what it made is kept"))
    plain_where = ", all servers" if server_id is None else f" of server {server_id}"
    return Message(f"{title}{plain_where}: {count}", blocks)
