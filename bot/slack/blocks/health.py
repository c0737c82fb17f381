"""Backup health on Slack: `/backup status` (every server, or one in detail) and the alert
posted in VPSBOT_ALERT_CHANNEL when a server's state changes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from bot.domain.model import Backup, BackupType, Snapshot
from bot.services.health import FAILURES_WITHIN, Report, ServerHealth, State
from bot.services.kinds import Item
from bot.slack.blocks.requests import is_skipped, timing
from bot.slack.blocks.schedules import last_run, local, noun, zone
from bot.slack.blocks.text import (
    MAX_BLOCKS,
    MAX_FALLBACK,
    Block,
    Message,
    ago,
    clip,
    context,
    escape,
    plural,
    safe,
    section,
    server_label,
    span,
)

EMOJI = {State.OK: ":white_check_mark:", State.STALE: ":warning:", State.FAILED: ":x:"}
# All servers: a header, the partial warning, the problem servers, the note of those left out,
# the healthy line and the footer: within 50 blocks.
MAX_PROBLEMS = MAX_BLOCKS - 10
MAX_SHOWN = 10  # a server's failures, or its failing schedules, listed in detail
MAX_SCHEDULES = 20
HEALTHY_CHARS = 1500  # the healthy servers' names, before "and N more"
PARTIAL = (
    ":warning: VPS.org returned partial lists: some backups or snapshots may be missing here, "
    "so a server may show as stale or without failures when it is not."
)
STATUS_ONE = escape("`/backup status <server_id>`")


def _backup_type(backup: Backup) -> str:
    kind = backup.backup_type
    return kind.value if isinstance(kind, BackupType) else safe(str(kind), 20)


def _backup(backup: Backup | None, now: datetime, *, typed: bool = True) -> str:
    """`#501 (automatic), 2 days ago` (`typed`: with its type), or `none completed`."""
    if backup is None:
        return "none completed"
    kind = f" ({_backup_type(backup)})" if typed else ""
    return f"#{backup.id}{kind}, {ago(backup.created_at, now)}"


def _failure(item: Item, now: datetime) -> str:
    """`snapshot #77 `failed`, 3 hours ago`."""
    kind = "snapshot" if isinstance(item, Snapshot) else "backup"
    return f"{kind} #{item.id} `{safe(item.status, 40)}`, {ago(item.created_at, now)}"


def _stale_means(report: Report) -> str:
    return (
        f"*Stale*: the newest completed backup is older than "
        f"{span(report.stale_after.total_seconds())} (or there is none). *Failed*: a backup or "
        f"snapshot failed within the last {FAILURES_WITHIN.days} days and no backup completed "
        "since."
    )


def _state_line(health: ServerHealth, now: datetime) -> str:
    """What the server's state is and why, in one sentence."""
    label = server_label(health.server)
    newest = health.newest_backup
    if health.state is State.FAILED and health.failures:
        return (
            f":x: {label} is *failed*: {_failure(health.failures[0], now)}, and no backup "
            "completed since."
        )
    said = "is *stale*" if health.state is State.STALE else f"is *{health.state.value}*"
    if newest is None:
        return f"{EMOJI[health.state]} {label} {said}: it has no completed backup."
    return (
        f"{EMOJI[health.state]} {label} {said}: its newest completed backup is "
        f"{_backup(newest, now)}."
    )


def _held(health: ServerHealth, report: Report) -> str:
    return (
        f"snapshots {health.snapshots}/{report.snapshot_limit} · manual backups "
        f"{health.manual_backups}/{report.manual_limit}"
    )


def _at(moment: datetime, tz: tzinfo) -> str:
    return f"{local(moment, tz)} {safe(zone(tz, moment), 60)}"


def _detail(health: ServerHealth, report: Report, tz: tzinfo) -> list[Block]:
    """One server: its state, its newest of each, its failures, what it holds, its schedules."""
    now = report.checked_at
    lines = []
    for title, backup in (
        ("Newest automatic backup", health.newest_automatic),
        ("Newest manual backup", health.newest_manual),
    ):
        at = f" · {_at(backup.created_at, tz)}" if backup is not None else ""
        lines.append(f"*{title}:* {_backup(backup, now, typed=False)}{at}")
    snapshot = health.newest_snapshot
    if snapshot is None:
        lines.append("*Newest snapshot:* none completed")
    else:
        name = f"`{safe(snapshot.name, 100)}` " if snapshot.name.strip() else ""
        lines.append(
            f"*Newest snapshot:* {name}#{snapshot.id}, {ago(snapshot.created_at, now)} · "
            f"{_at(snapshot.created_at, tz)}"
        )
    lines.append(f"*Held:* {_held(health, report)}")
    blocks = [section(_state_line(health, now)), section("\n".join(lines))]
    if health.failures:
        shown = [f"• {_failure(item, now)}" for item in health.failures[:MAX_SHOWN]]
        if len(health.failures) > MAX_SHOWN:
            shown.append(f"…and {len(health.failures) - MAX_SHOWN} more")
        head = f"*Failed within {FAILURES_WITHIN.days} days* ({len(health.failures)}):"
        blocks.append(section("\n".join([head, *shown])))
    if health.schedules:
        runs = {run.asked.schedule_id: run for run in health.last_runs}
        shown = [
            f"• *#{s.id}* {noun(s.kind)}s · {timing(s.when)} · keeps {s.keep} · last run: "
            f"{last_run(runs.get(s.id), now)}"
            for s in health.schedules[:MAX_SCHEDULES]
        ]
        if len(health.schedules) > MAX_SCHEDULES:
            shown.append(f"…and {len(health.schedules) - MAX_SCHEDULES} more")
        blocks.append(section("\n".join([f"*Schedules* ({len(health.schedules)}):", *shown])))
    else:
        blocks.append(
            section(
                "*Schedules:* none. "
                + escape("`/backup schedule <server_id> <when> keep <N>` adds one.")
            )
        )
    return blocks


def _problem(health: ServerHealth, report: Report) -> str:
    """A stale or failed server in two lines: what is wrong, what it holds, its failing runs."""
    now = report.checked_at
    facts = [f"newest backup {_backup(health.newest_backup, now)}"]
    if health.failures:
        count = plural(len(health.failures), "failure")
        facts.append(
            f"{count} in {FAILURES_WITHIN.days} days (latest: {_failure(health.failures[0], now)})"
        )
    facts.append(_held(health, report))
    failing = [
        f"schedule #{run.asked.schedule_id} "
        + ("skipped" if is_skipped(run) else run.status.value.replace("_", " "))
        for run in health.failed_runs[:MAX_SHOWN]
    ]
    more = len(health.failed_runs) - MAX_SHOWN
    if more > 0:
        failing.append(f"and {more} more")
    runs = f"\nLast runs: {', '.join(failing)}" if failing else ""
    return (
        f"{EMOJI[health.state]} {server_label(health.server)} · *{health.state.value}*\n"
        f"{' · '.join(facts)}{runs}"
    )


def _healthy(servers: list[ServerHealth]) -> str:
    """`✅ 14 healthy: web-01, db-02, …`: names until HEALTHY_CHARS, then how many more."""
    names: list[str] = []
    used = 0
    for health in servers:
        name = (
            safe(health.server.name, 40) if health.server.name.strip() else f"`{health.server.id}`"
        )
        if used + len(name) > HEALTHY_CHARS:
            break
        names.append(name)
        used += len(name) + 2
    more = len(servers) - len(names)
    tail = f" and {more} more" if more else ""
    return f":white_check_mark: {len(servers)} healthy: {', '.join(names)}{tail}"


def _overview(report: Report) -> list[Block]:
    by_state = {state: [h for h in report.servers if h.state is state] for state in State}
    problems = [*by_state[State.FAILED], *by_state[State.STALE]]
    header = (
        f"*Backup health*, {plural(len(report.servers), 'server')}: :x: "
        f"{len(by_state[State.FAILED])} failed · :warning: {len(by_state[State.STALE])} stale · "
        f":white_check_mark: {len(by_state[State.OK])} ok"
    )
    blocks = [section(header)]
    if report.partial:
        blocks.append(section(PARTIAL))
    blocks += [section(_problem(h, report)) for h in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        rest = problems[MAX_PROBLEMS:]
        blocks.append(
            context(
                f"…and {plural(len(rest), 'more server')} stale or failed: "
                + ", ".join(f"`{h.server.id}`" for h in rest[:100])
            )
        )
    if by_state[State.OK]:
        blocks.append(section(_healthy(by_state[State.OK])))
    return blocks


def status_message(report: Report, tz: tzinfo, server_id: int | None = None) -> Message:
    """`/backup status`: every server (the stale and failed ones each in a few lines, the
    healthy ones in one), or one server in detail."""
    found = [h for h in report.servers if server_id is None or h.server.id == server_id]
    if not found:
        where = f" of server `{server_id}`" if server_id is not None else ""
        text = (
            f":information_source: Nothing to report: VPS.org lists no backups or snapshots"
            f"{where}, and no schedule is set. "
            + escape("Schedule backups with `/backup schedule <server_id> <when> keep <N>`.")
        )
        blocks = [section(text)]
        if report.partial:
            blocks.append(section(PARTIAL))
        return Message(clip(text, MAX_FALLBACK), blocks)
    if server_id is not None:
        health = found[0]
        blocks = _detail(health, report, tz)
        if report.partial:
            blocks.insert(1, section(PARTIAL))
        fallback = clip(_state_line(health, report.checked_at), MAX_FALLBACK)
    else:
        blocks = _overview(report)
        failed = sum(1 for h in report.servers if h.state is State.FAILED)
        stale = sum(1 for h in report.servers if h.state is State.STALE)
        fallback = (
            f"Backup health, {plural(len(report.servers), 'server')}: {failed} failed, "
            f"{stale} stale"
        )
    checked = f"Checked {_at(report.checked_at, tz)}"
    footer = f"{_stale_means(report)} {checked}."
    if server_id is None:
        footer += f" {STATUS_ONE} shows one server in detail."
    blocks.append(context(footer))
    return Message(fallback, blocks[:MAX_BLOCKS])


# -- the alert --------------------------------------------------------------------------------


def _field(payload: Mapping[str, Any], key: str) -> Any:
    return payload.get(key)


def _moment(value: Any) -> datetime | None:
    """An ISO time from the payload (None when it is not one); naive ones read as UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _word(value: Any, limit: int = 40) -> str:
    return safe(str(value), limit) if value is not None and str(value) else ""


def _alert_server(payload: Mapping[str, Any]) -> str:
    """`*web-01* (`123`)`, `server `123``, or `a server` when the payload names none."""
    name, ident = _field(payload, "server_name"), _word(_field(payload, "server_id"), 20)
    named = isinstance(name, str) and name.strip()
    if named:
        return f"*{safe(str(name), 100)}*" + (f" (`{ident}`)" if ident else "")
    return f"server `{ident}`" if ident else "a server"


def _age(value: Any, now: datetime) -> str:
    moment = _moment(value)
    return ago(moment, now) if moment is not None else ""


def _alert_backup(newest: Any, now: datetime) -> str | None:
    """`#502 (manual), 5 minutes ago` (None when the payload has no newest backup)."""
    if not isinstance(newest, Mapping):
        return None
    ident = _word(newest.get("id"), 20)
    kind = _word(newest.get("type"), 20)
    age = _age(newest.get("created_at"), now)
    said = f"#{ident}" if ident else "a backup"
    said += f" ({kind})" if kind else ""
    return said + (f", {age}" if age else "")


def _alert_failure(failure: Any, now: datetime) -> str:
    """`a backup (#77) is `failed` (3 hours ago)`."""
    if not isinstance(failure, Mapping):
        return "a backup or snapshot failed"
    kind = failure.get("kind")
    what = kind if kind in ("backup", "snapshot") else "backup or snapshot"
    ident = _word(failure.get("id"), 20)
    status = _word(failure.get("status")) or "failed"
    age = _age(failure.get("created_at"), now)
    return (
        f"a {what}"
        + (f" (#{ident})" if ident else "")
        + f" is `{status}`"
        + (f" ({age})" if age else "")
    )


def alert_message(payload: dict[str, Any], now: datetime) -> Message:
    """The alert for a server whose state changed (`health.alert_payload`'s facts). Whatever
    is missing or malformed in the payload, a sensible message: never an exception."""
    facts: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    server = _alert_server(facts)
    state, previous = facts.get("state"), facts.get("previous")
    newest = _alert_backup(facts.get("newest_backup"), now)
    if state == State.STALE.value:
        if newest is None:
            text = f":warning: {server} is stale: it has no completed backup."
        else:
            text = f":warning: {server} is stale: its newest completed backup is {newest}."
    elif state == State.FAILED.value:
        since = (
            f" Its newest completed backup is {newest}."
            if newest
            else " It has no completed backup."
        )
        text = (
            f":x: {server}: {_alert_failure(facts.get('failure'), now)}, and no backup "
            f"completed after it.{since}"
        )
    elif state == State.OK.value:
        back = "has recovered" if previous is not None else "is ok"
        text = f":white_check_mark: {server} {back}" + (
            f": newest backup {newest}." if newest else "."
        )
    else:
        shown = _word(state) or "unknown"
        text = f":grey_question: {server}: its backup health is now `{shown}`."
    was = _word(previous) if previous is not None else ""
    notes = [f"was {was}" if was else "first check"]
    ident = facts.get("server_id")
    if isinstance(ident, int) and not isinstance(ident, bool):
        notes.append(f"`/backup status {ident}` for details")
    return Message(clip(text, MAX_FALLBACK), [section(text), context(" · ".join(notes))])
