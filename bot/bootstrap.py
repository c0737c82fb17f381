"""Composition root: builds the real collaborators from settings; tests pass fakes instead."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette

from bot.config import Settings
from bot.services import Services
from bot.services.commands import CommandLog
from bot.services.ports import Clock, UnitOfWork, VpsApi, utcnow
from bot.slack import build_app, http_endpoint
from bot.storage.database import Database
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.client import VpsClient
from bot.web import web_app

log = logging.getLogger(__name__)


@dataclass
class Bot:
    settings: Settings
    database: Database
    vps: VpsApi
    services: Services
    slack: AsyncApp
    web: Starlette
    _owns_vps: bool = True

    async def start(self) -> None:
        """Bring the schema up to date (an advisory lock serialises instances on PostgreSQL)."""
        await self.database.upgrade()

    async def stop(self) -> None:
        if self._owns_vps and isinstance(self.vps, VpsClient):
            await self.vps.aclose()
        await self.database.dispose()


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter else ""


def build(
    settings: Settings,
    *,
    vps: VpsApi | None = None,
    database: Database | None = None,
    clock: Clock = utcnow,
) -> Bot:
    database = database or Database(settings.async_database_url)
    owns_vps = vps is None
    if vps is None:
        vps = VpsClient(settings.vps_api_url, _secret(settings.vps_api_token))

    def unit_of_work() -> UnitOfWork:
        return SqlUnitOfWork(database.sessions)

    services = Services(
        vps=vps,
        uow=unit_of_work,
        clock=clock,
        commands=CommandLog(unit_of_work, clock),
    )
    slack = build_app(
        services,
        bot_token=_secret(settings.slack_bot_token),
        signing_secret=_secret(settings.slack_signing_secret),
        api_url=settings.slack_api_url,
    )
    bot: Bot

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await bot.start()
        try:
            yield
        finally:
            await bot.stop()

    web = web_app(http_endpoint(slack), database.ping, lifespan)
    bot = Bot(settings, database, vps, services, slack, web, owns_vps)
    return bot
