"""Composition root: builds the real collaborators from settings; tests pass fakes instead."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette

from bot import metrics
from bot.config import Settings, reveal
from bot.domain.lifecycle import UNDER_WAY, Status
from bot.handoff import WorkProcess, serve_handed
from bot.preflight import before_start, bind_port
from bot.services import Services, reports
from bot.services.commands import CommandLog
from bot.services.lifecycle import Lifecycle, Policy
from bot.services.ports import Clock, UnitOfWork, VpsApi, utcnow
from bot.serving import serving
from bot.slack import (
    SharedSession,
    build_app,
    http_endpoint,
    identify,
    inflight_of,
    web_client,
    works_of,
)
from bot.slack.commands import handed_again
from bot.slack.directory import SlackDirectory
from bot.slack.inflight import InFlight
from bot.slack.notifier import SlackNotifier
from bot.slack.socket_mode import SocketModeLink
from bot.storage.database import Database
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.tracker import Worker, instance_id
from bot.vpsorg.client import VpsClient, httpx_timeout
from bot.web import web_app

log = logging.getLogger(__name__)
DRAIN_SECONDS = 20.0
WORK_NICENESS = 19  # the work process's CPU priority below the front's (which acks)
CACHE_GAUGES = 5.0  # seconds the database gauges of /metrics are reused


@dataclass
class Bot:
    settings: Settings
    database: Database
    vps: VpsApi
    services: Services
    slack: AsyncApp
    web: Starlette
    worker: Worker
    slack_http: SharedSession
    run_worker: bool = True
    _owns_vps: bool = True
    handoff: WorkProcess | None = None  # the work process the front hands its requests to
    started: bool = False
    stopped: bool = False
    schema_ready: bool = False  # preflight.before_start brought the schema up to date

    async def start(self, *, front: bool = True) -> None:
        """Bring the schema up to date (an advisory lock serialises instances on PostgreSQL),
        then start following operations and delivering messages (here, or in the work process
        when requests are handed to one). A work process (`front=False`) gates no request, so
        it does not ask Slack which workspace it is in."""
        self.started = True
        if not self.schema_ready:
            await self.database.upgrade()
        await self.slack_http.open()
        if front:
            await identify(self.slack)  # the workspace requests must come from (auth.test)
        if self.handoff is not None:
            await self.handoff.start()
        if self.run_worker:
            self.worker.start()

    async def stop(self) -> None:
        """Let work started for people finish (up to 20 s), then hand leases back and close.
        Once: a second call does nothing."""
        if self.stopped:
            return
        self.stopped = True
        inflight = inflight_of(self.slack)
        if not await inflight.drain(DRAIN_SECONDS):
            log.warning("stopping with %d requests still in flight", inflight.count)
        if self.handoff is not None:
            await self.handoff.stop()
        await self.worker.stop()
        await self.slack_http.close()
        if self._owns_vps and isinstance(self.vps, VpsClient):
            await self.vps.aclose()
        await self.database.dispose()


def build(
    settings: Settings,
    *,
    vps: VpsApi | None = None,
    database: Database | None = None,
    clock: Clock = utcnow,
    run_worker: bool = True,
    owner: str | None = None,
    handoff: WorkProcess | None = None,
    turns: int = InFlight.TURNS,
) -> Bot:
    """The bot, every collaborator built from `settings` unless given. With `handoff`, the
    work after each ack goes to that work process, which also follows operations and delivers
    messages: this process only acks (and serves /healthz and /metrics)."""
    database = database or Database(settings.async_database_url)
    owns_vps = vps is None
    if vps is None:
        vps = VpsClient(
            settings.vps_api_url,
            reveal(settings.vps_api_token),
            timeout=httpx_timeout(settings.vpsbot_api_timeout),
        )

    # Set by a unit of work that committed outbox rows: the sender delivers them at once.
    outbox_due = asyncio.Event()

    def unit_of_work() -> UnitOfWork:
        return SqlUnitOfWork(database.sessions, on_outbox=outbox_due.set)

    policy = Policy(
        poll_interval=timedelta(seconds=settings.vpsbot_poll_interval),
        confirm_ttl=timedelta(minutes=settings.vpsbot_approval_ttl),
        approval_ttl=timedelta(minutes=settings.vpsbot_approval_ttl),
        required_approvals=settings.vpsbot_required_approvals,
        approvers=settings.vpsbot_approvers,
        require_reason=settings.vpsbot_require_reason,
        channels=settings.vpsbot_channels,
        operators=settings.vpsbot_operators,
        safety_snapshot=settings.vpsbot_safety_snapshot,
        safety_keep=timedelta(days=settings.vpsbot_safety_snapshot_days),
        reminder_after=timedelta(minutes=settings.reminder_after),
        timezone=settings.timezone,
        schedule_min_interval=timedelta(seconds=settings.vpsbot_schedule_min_interval),
        stale_after=timedelta(hours=settings.vpsbot_stale_after),
        health_interval=timedelta(minutes=settings.vpsbot_health_interval),
        alert_channel=settings.vpsbot_alert_channel,
    )
    client = web_client(reveal(settings.slack_bot_token), settings.slack_api_url)
    services = Services(
        vps=vps,
        life=Lifecycle(unit_of_work, clock, policy, owner or instance_id()),
        commands=CommandLog(unit_of_work, clock),
        directory=SlackDirectory(client, settings.vpsbot_directory_ttl),
    )
    worker = Worker(services, SlackNotifier(client, clock), outbox_due)
    slack = build_app(
        services,
        bot_token=reveal(settings.slack_bot_token),
        signing_secret=reveal(settings.slack_signing_secret),
        api_url=settings.slack_api_url,
        handoff=handoff,
        turns=turns,
    )
    bot: Bot

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if not bot.started:  # `serve` starts it before it takes connections
            await bot.start()
        try:
            yield
        finally:
            await bot.stop()

    working = (lambda: handoff.running) if handoff is not None else None
    web = web_app(http_endpoint(slack), database.ping, lifespan, gauges_of(services), working)
    shared = SharedSession(client, slack.client)
    bot = Bot(
        settings, database, vps, services, slack, web, worker, shared,
        run_worker and handoff is None, owns_vps, handoff=handoff,
    )  # fmt: skip
    return bot


def gauges_of(services: Services) -> metrics.Refresh:
    """What a scrape of `/metrics` reads from the database first: requests by status, the
    operations in flight, the outbox backlog and its oldest message's age."""

    read_at = -CACHE_GAUGES

    async def refresh() -> None:
        nonlocal read_at
        now = asyncio.get_running_loop().time()
        if now - read_at < CACHE_GAUGES:  # scrapes in a burst read the database once
            return
        found = await reports.gauges(services.life)
        read_at = now
        for status in Status:
            metrics.REQUESTS.labels(status.value).set(found.by_status.get(status.value, 0))
        metrics.IN_FLIGHT.set(sum(found.by_status.get(s.value, 0) for s in UNDER_WAY))
        metrics.OUTBOX_BACKLOG.set(found.backlog)
        metrics.OUTBOX_OLDEST.set(found.oldest_age)

    return refresh


async def checked(
    settings: Settings, *, slack_required: bool = False, hand_off: bool = False
) -> Bot:
    """The bot of `serve`, `socket` and `worker`: built once the start-up checks passed
    (`preflight.before_start`, which also brought the schema up to date); with `hand_off`
    (and VPSBOT_WORK_PROCESS), the work after each ack runs in a work process of its own."""
    database = await before_start(settings, slack_required=slack_required)
    handoff = WorkProcess() if hand_off and settings.vpsbot_work_process else None
    bot = build(settings, database=database, handoff=handoff)
    bot.schema_ready = True
    return bot


async def run_work_process(settings: Settings, fd: int, front: int) -> None:
    """`python -m bot work --fd N`, started by `serve` or `socket`: the work after each ack,
    handed over on the socket `fd`, and the tracker and the outbox sender. It ends when the
    front says so (after its last ack) or goes away, once that work has finished."""
    _die_with_front(front)
    os.nice(WORK_NICENESS)  # when the machine is busy, the front's acks come first
    bot = build(settings, turns=InFlight.WORK_PROCESS_TURNS)
    bot.schema_ready = True  # the front checked and upgraded the schema before starting it
    try:
        await bot.start(front=False)
        await serve_handed(
            fd,
            works_of(bot.slack),
            bot.slack.client,
            inflight_of(bot.slack).start,
            bot.stop,
            handed_again(bot.services),
            bot.services.commands.finished,
        )
    finally:
        await bot.stop()


async def run_socket_mode(
    settings: Settings,
    stopping: asyncio.Event,
    *,
    host: str = "0.0.0.0",  # noqa: S104
) -> None:
    """`python -m bot socket`: the app over Socket Mode, the tracker and outbox sender beside it,
    and `GET /healthz` and `GET /metrics` on `$PORT` (there is no `/slack/events`: Slack never
    calls in). Returns when `stopping` is set, after work in progress has finished and leases
    are handed back."""
    sock = bind_port(settings.port, host)  # a port in use is one line, before anything starts
    try:
        bot = await checked(settings, slack_required=True, hand_off=True)
        link = SocketModeLink(bot.slack, reveal(settings.slack_app_token))
        try:
            await bot.start()
            async with serving(
                web_app(
                    None,
                    bot.database.ping,
                    refresh=gauges_of(bot.services),
                    working=(lambda: handoff.running) if (handoff := bot.handoff) else None,
                ),
                sock=sock,
            ):
                if await _until_stopped(link.open(), stopping):
                    return  # told to stop before the connection was open
                await stopping.wait()
                log.info("stopping: no new envelopes; finishing work in progress")
        finally:
            await link.close()
            await bot.stop()
    finally:
        sock.close()


async def run_worker_process(
    settings: Settings,
    stopping: asyncio.Event,
    *,
    host: str = "0.0.0.0",  # noqa: S104
) -> None:
    """`python -m bot worker`: the tracker and the outbox sender alone, with `GET /healthz` and
    `GET /metrics` on `$PORT`. Returns when `stopping` is set, leases handed back."""
    sock = bind_port(settings.port, host)
    try:
        bot = await checked(settings)
        try:
            await bot.start()
            async with serving(
                web_app(None, bot.database.ping, refresh=gauges_of(bot.services)), sock=sock
            ):
                await stopping.wait()
        finally:
            await bot.stop()
    finally:
        sock.close()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_front(front: int) -> None:
    """On Linux, this process is killed when its front dies (prctl PR_SET_PDEATHSIG), as the
    processes of a container die together: a front killed outright never leaves its work
    process acting alone. (A front that stops in good order drains it first.)"""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        log.warning("could not tie the work process's life to its front's")
    if os.getppid() != front:  # the front died before that: nothing to work for (its pid, not 1:
        # in a container the front is pid 1)
        os._exit(1)


async def _until_stopped(work: Coroutine[Any, Any, None], stopping: asyncio.Event) -> bool:
    """Run `work` unless `stopping` is set first (then cancel it): True when it was stopped.
    A SIGTERM during start-up stops the process instead of waiting for Slack."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # whatever happened, nothing is left running (a cancelled caller included)
        stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    if task.cancelled():
        return True
    task.result()  # raises what stopped it
    return False
