"""VpsClient: typed async methods for every VPS.org endpoint the bot uses.

Reads (GET) go through a retrying transport: connection errors, 429 (honouring Retry-After up
to a cap) and 5xx are retried with capped backoff. Writes (POST, DELETE) are sent once and never
retried: a restore or delete that is sent twice can destroy data.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
from httpx_retries import Retry, RetryTransport

from bot.domain.errors import BadResponse, VpsApiError
from bot.domain.model import (
    Backup,
    BackupType,
    Listing,
    RestoreStarted,
    Server,
    Snapshot,
    Started,
)
from bot.vpsorg import schemas
from bot.vpsorg.errors import error_from_exception, error_from_response


def httpx_timeout(seconds: float) -> httpx.Timeout:
    """Each VPS.org call gets `seconds` to answer (and at most 5 s to connect)."""
    return httpx.Timeout(seconds, connect=min(seconds, 5.0))


DEFAULT_TIMEOUT = httpx_timeout(10.0)
MAX_PAGES = 50
MAX_CONCURRENT = 16


def read_retry(*, backoff_factor: float = 0.25, max_wait: float = 3.0) -> Retry:
    """Retry policy for idempotent reads; never applies to POST or DELETE."""
    return Retry(
        total=2,
        allowed_methods=["GET"],
        status_forcelist=[429, 500, 502, 503, 504],
        # A read timeout is not retried: a person is waiting, and 2 x 10 s is too long.
        retry_on_exceptions=[httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError],
        backoff_factor=backoff_factor,
        max_backoff_wait=max_wait,
        total_timeout=max_wait * 2,
    )


class VpsClient:
    """The VPS.org API. Every method raises a `VpsApiError` subclass on failure."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
    ) -> None:
        inner = transport or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=MAX_CONCURRENT, max_keepalive_connections=MAX_CONCURRENT
            )
        )
        # At most MAX_CONCURRENT calls in flight: VPS.org is spared bursts, and httpcore's pool,
        # whose queue handling is quadratic in waiting requests, never holds a long queue.
        self._gate = asyncio.Semaphore(MAX_CONCURRENT)
        self._base = httpx.URL(base_url.rstrip("/") + "/")
        self._http = httpx.AsyncClient(
            base_url=self._base,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "vpsbot",
            },
            timeout=timeout,
            transport=RetryTransport(transport=inner, retry=retry or read_retry()),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- servers (inferred Servers API) ------------------------------------------------------

    async def list_servers(self) -> Listing[Server]:
        pages = await self._list("servers/", {})
        items = (self._one(schemas.ServerIn, raw, "GET", "/servers/") for raw in pages.items)
        return Listing(tuple(item.to_domain() for item in items), pages.partial)

    async def get_server(self, server_id: int) -> Server:
        body = await self._request("GET", f"servers/{server_id}/")
        return self._one(schemas.ServerIn, body, "GET", f"servers/{server_id}/").to_domain()

    # -- snapshots ---------------------------------------------------------------------------

    async def list_snapshots(self, server_id: int | None = None) -> Listing[Snapshot]:
        params = {} if server_id is None else {"server_id": str(server_id)}
        pages = await self._list("snapshots/", params)
        items = (self._one(schemas.SnapshotIn, raw, "GET", "/snapshots/") for raw in pages.items)
        return Listing(tuple(item.to_domain() for item in items), pages.partial)

    async def create_snapshot(
        self, server_id: int, name: str, description: str = ""
    ) -> Started[Snapshot]:
        payload: dict[str, Any] = {"server_id": server_id, "name": name}
        if description:
            payload["description"] = description
        body = await self._request("POST", "snapshots/", payload)
        created = self._one(schemas.SnapshotIn, body, "POST", "snapshots/")
        return Started(created.to_domain(), created.message or "")

    async def restore_snapshot(self, snapshot_id: int) -> RestoreStarted:
        path = f"snapshots/{snapshot_id}/restore/"
        body = await self._request("POST", path)
        accepted = self._one(schemas.RestoreIn, body, "POST", path)
        return RestoreStarted(accepted.server.to_domain(), accepted.message)

    async def delete_snapshot(self, snapshot_id: int) -> None:
        await self._request("DELETE", f"snapshots/{snapshot_id}/")

    # -- backups -----------------------------------------------------------------------------

    async def list_backups(
        self, server_id: int | None = None, backup_type: BackupType | None = None
    ) -> Listing[Backup]:
        params: dict[str, str] = {}
        if server_id is not None:
            params["server_id"] = str(server_id)
        if backup_type is not None:
            params["backup_type"] = backup_type.value
        pages = await self._list("backups/", params)
        items = (self._one(schemas.BackupIn, raw, "GET", "/backups/") for raw in pages.items)
        return Listing(tuple(item.to_domain() for item in items), pages.partial)

    async def create_backup(self, server_id: int, description: str = "") -> Started[Backup]:
        payload: dict[str, Any] = {"server_id": server_id}
        if description:
            payload["description"] = description
        body = await self._request("POST", "backups/", payload)
        created = self._one(schemas.BackupIn, body, "POST", "backups/")
        return Started(created.to_domain(), created.message or "")

    async def restore_backup(self, server_id: int, backup_id: int) -> RestoreStarted:
        path = f"servers/{server_id}/restore/"
        body = await self._request("POST", path, {"backup_id": backup_id})
        # The backup restore response is not documented; a 2xx means "started" whatever it holds.
        try:
            accepted = schemas.parse(schemas.RestoreIn, body)
        except schemas.SchemaError:
            return RestoreStarted(Server(server_id, "", "restoring"), "")
        return RestoreStarted(accepted.server.to_domain(), accepted.message)

    async def delete_backup(self, backup_id: int) -> None:
        await self._request("DELETE", f"backups/{backup_id}/")

    # -- plumbing ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON (None for an empty 2xx body)."""
        try:
            async with self._gate:
                response = await self._http.request(method, path, json=payload, params=params)
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, method, "/" + path) from None
        if not response.is_success:
            raise error_from_response(response, method, "/" + path)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return json.loads(response.content)
        except ValueError:
            raise BadResponse(
                "unexpected response from VPS.org (not JSON)",
                status=response.status_code,
                method=method,
                path="/" + path,
            ) from None

    async def _list(self, path: str, params: Mapping[str, str]) -> Listing[dict[str, Any]]:
        """Read every page of a `{count, results, next}` list."""
        items: list[dict[str, Any]] = []
        url: str | None = path
        query: Mapping[str, str] | None = params
        count = 0
        for _ in range(MAX_PAGES):
            assert url is not None
            body = await self._request("GET", url, params=query)
            page = self._one(schemas.PageIn, body, "GET", "/" + path)
            items.extend(page.results)
            count = page.count
            url, query = self._next_page(page.next, path), None
            if url is None:
                break
        return Listing(tuple(items), partial=count > len(items))

    def _next_page(self, link: str | None, path: str) -> str | None:
        """Follow `next` only when it points back at our own API (the token goes with it)."""
        if not link:
            return None
        target = self._base.join(link)
        base = urlsplit(str(self._base))
        there = urlsplit(str(target))
        if (there.scheme, there.netloc) != (base.scheme, base.netloc):
            raise BadResponse("VPS.org pointed the next page at another host", path="/" + path)
        return str(target)

    @staticmethod
    def _one(schema: type[schemas.M], body: Any, method: str, path: str) -> schemas.M:
        try:
            return schemas.parse(schema, body)
        except schemas.SchemaError as exc:
            raise BadResponse(
                f"unexpected response from VPS.org ({exc})", method=method, path=path
            ) from None


__all__ = ["VpsApiError", "VpsClient", "httpx_timeout", "read_retry"]
