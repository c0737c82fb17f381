"""VpsClient: typed async methods for every VPS.org endpoint the bot uses.

Reads (GET) go through a retrying transport: connection errors, 429 (honouring Retry-After up
to a cap) and 5xx are retried with capped backoff. Writes (POST, DELETE) are sent once and never
retried: a restore or delete that is sent twice can destroy data.

The configured timeout is a deadline for the whole call (connecting, retries, the answer's
headers and its body), not per read: an answer trickled a byte at a time still ends on time. An
answer larger than MAX_BODY is refused without being read whole. Listings are parsed one object
at a time: an object vpsbot cannot read is skipped (and logged) instead of failing the whole list,
unless none can be read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import httpx
from httpx_retries import Retry, RetryTransport

from bot.domain.errors import BadResponse, VpsApiError
from bot.domain.model import (
    Backup,
    BackupType,
    Call,
    Listing,
    RestoreStarted,
    Server,
    Snapshot,
    Started,
)
from bot.vpsorg import schemas
from bot.vpsorg.errors import error_from_exception, error_from_response, scrub

log = logging.getLogger(__name__)


def httpx_timeout(seconds: float) -> httpx.Timeout:
    """Each VPS.org call gets `seconds` to answer (and at most 5 s to connect)."""
    return httpx.Timeout(seconds, connect=min(seconds, 5.0))


def call_deadline(timeout: httpx.Timeout | float | None) -> float | None:
    """The seconds a whole call may take: the longest of the timeout's parts."""
    if isinstance(timeout, httpx.Timeout):
        parts = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t]
        return max(parts) if parts else None
    return timeout


DEFAULT_TIMEOUT = httpx_timeout(10.0)
MAX_PAGES = 50
MAX_CONCURRENT = 16
MAX_BODY = 10 * 1024 * 1024  # bytes; VPS.org's largest documented answer is a few kB a page
# A GET's retries may sleep at most this share of its deadline in all, so a 5xx that is retried
# is still reported as what it was rather than as a time-out: the rest is left to the three
# attempts themselves, which take longer on a loaded machine (0.5 was seen to run out).
RETRY_SHARE = 0.3

T = TypeVar("T")


def _call(method: str, path: str, status: int = 200) -> Call:
    """A call that answered 2xx, named as the audit trail names it (`POST /snapshots/`)."""
    return Call(method, "/" + path, status)


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
        self._secrets = (token,)
        self._deadline = call_deadline(timeout)
        self._retry = retry or read_retry()
        self._http = httpx.AsyncClient(
            base_url=self._base,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "vpsbot",
            },
            timeout=timeout,
            transport=RetryTransport(transport=inner, retry=self._retry),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- servers (inferred Servers API) ------------------------------------------------------

    async def probe(self) -> int | None:
        """One read that needs the token (the first page of `GET /servers/`): raises like any
        call when the token is refused or VPS.org cannot be reached; returns the server count
        VPS.org gives, if it gives one."""
        body = await self._request("GET", "servers/")
        count = body.get("count") if isinstance(body, dict) else None
        return count if isinstance(count, int) and not isinstance(count, bool) else None

    async def list_servers(self) -> Listing[Server]:
        pages = await self._list("servers/", {})
        return self._usable(pages, schemas.ServerIn, "servers", lambda item: item.to_domain())

    async def get_server(self, server_id: int) -> Server:
        body = await self._request("GET", f"servers/{server_id}/")
        return self._one(schemas.ServerIn, body, "GET", f"servers/{server_id}/").to_domain()

    # -- snapshots ---------------------------------------------------------------------------

    async def list_snapshots(self, server_id: int | None = None) -> Listing[Snapshot]:
        params = {} if server_id is None else {"server_id": str(server_id)}
        pages = await self._list("snapshots/", params)
        return self._usable(pages, schemas.SnapshotIn, "snapshots", lambda item: item.to_domain())

    async def create_snapshot(
        self, server_id: int, name: str, description: str = ""
    ) -> Started[Snapshot]:
        payload: dict[str, Any] = {"server_id": server_id, "name": name}
        if description:
            payload["description"] = description
        body = await self._request("POST", "snapshots/", payload)
        created = self._one(schemas.SnapshotIn, body, "POST", "snapshots/")
        return Started(
            created.to_domain(),
            self._scrub(created.message or ""),
            _call("POST", "snapshots/", 201),
        )

    async def restore_snapshot(self, snapshot_id: int) -> RestoreStarted:
        path = f"snapshots/{snapshot_id}/restore/"
        body = await self._request("POST", path)
        accepted = self._one(schemas.RestoreIn, body, "POST", path)
        return RestoreStarted(
            accepted.server.to_domain(), self._scrub(accepted.message), _call("POST", path)
        )

    async def delete_snapshot(self, snapshot_id: int) -> Call:
        path = f"snapshots/{snapshot_id}/"
        await self._request("DELETE", path)
        return _call("DELETE", path, 204)

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
        return self._usable(pages, schemas.BackupIn, "backups", lambda item: item.to_domain())

    async def create_backup(self, server_id: int, description: str = "") -> Started[Backup]:
        payload: dict[str, Any] = {"server_id": server_id}
        if description:
            payload["description"] = description
        body = await self._request("POST", "backups/", payload)
        created = self._one(schemas.BackupIn, body, "POST", "backups/")
        return Started(
            created.to_domain(), self._scrub(created.message or ""), _call("POST", "backups/", 201)
        )

    async def restore_backup(self, server_id: int, backup_id: int) -> RestoreStarted:
        path = f"servers/{server_id}/restore/"
        body = await self._request("POST", path, {"backup_id": backup_id})
        # The backup restore response is not documented; a 2xx means "started" whatever it holds.
        try:
            accepted = schemas.parse(schemas.RestoreIn, body)
        except schemas.SchemaError:
            return RestoreStarted(Server(server_id, "", "restoring"), "", _call("POST", path))
        return RestoreStarted(
            accepted.server.to_domain(), self._scrub(accepted.message), _call("POST", path)
        )

    async def delete_backup(self, backup_id: int) -> Call:
        path = f"backups/{backup_id}/"
        await self._request("DELETE", path)
        return _call("DELETE", path, 204)

    # -- plumbing ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON (None for an empty 2xx body).

        The deadline starts once the call holds its place among the MAX_CONCURRENT in flight: a
        write that waited its turn and was never sent is not an unknown outcome.
        """
        where = "/" + path
        async with self._gate:
            try:
                async with asyncio.timeout(self._deadline):
                    response, content = await self._exchange(method, path, payload, params)
            except (httpx.HTTPError, TimeoutError) as exc:
                raise error_from_exception(exc, method, where) from None
        if not response.is_success:
            raise error_from_response(
                response, method, where, content=content, secrets=self._secrets
            )
        if response.status_code == 204 or not content:
            return None
        try:
            return json.loads(content)
        except ValueError:
            raise BadResponse(
                "unexpected response from VPS.org (not JSON)",
                status=response.status_code,
                method=method,
                path=where,
            ) from None

    async def _exchange(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
    ) -> tuple[httpx.Response, bytes]:
        """The answer and its body, streamed and read up to MAX_BODY bytes."""
        extensions: dict[str, Any] = {}
        if method == "GET" and self._deadline:
            # this call's retries sleep within its deadline (RetryTransport reads it from here)
            budget = self._deadline * RETRY_SHARE
            if self._retry.total_timeout is not None:
                budget = min(budget, self._retry.total_timeout)
            extensions["retry"] = self._retry.copy_with(total_timeout=budget)
        async with self._http.stream(
            method, path, json=payload, params=params, extensions=extensions
        ) as response:
            return response, await self._read_bounded(response, method, "/" + path)

    @staticmethod
    async def _read_bounded(response: httpx.Response, method: str, where: str) -> bytes:
        declared = response.headers.get("Content-Length", "").strip()
        too_large = f"VPS.org's answer is larger than {MAX_BODY // (1024 * 1024)} MB"
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise BadResponse(
                f"{too_large} (it says {int(declared)} bytes); it was not read",
                status=response.status_code,
                method=method,
                path=where,
            )
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BODY:
                raise BadResponse(
                    f"{too_large}; vpsbot stopped reading it",
                    status=response.status_code,
                    method=method,
                    path=where,
                )
        return bytes(body)

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

    def _usable(
        self,
        pages: Listing[dict[str, Any]],
        schema: type[schemas.M],
        noun: str,
        to_domain: Callable[[schemas.M], T],
    ) -> Listing[T]:
        """Every listed object vpsbot can read. An unreadable one among readable ones is skipped
        (logged once per list, the listing then `partial`); when none can be read, VPS.org's
        answer has changed shape and the list is a BadResponse, not an empty list."""
        usable: list[T] = []
        skipped: list[str] = []
        for raw in pages.items:
            try:
                usable.append(to_domain(schemas.parse(schema, raw)))
            except schemas.SchemaError as exc:
                skipped.append(self._scrub(str(exc)))
        if skipped and not usable:
            raise BadResponse(
                f"unexpected response from VPS.org ({skipped[0]})", method="GET", path=f"/{noun}/"
            )
        if skipped:
            log.warning(
                "VPS.org listed %d of %d %s in a shape vpsbot cannot read; skipped them "
                "(first: %s)",
                len(skipped),
                len(pages.items),
                noun,
                skipped[0],
            )
        return Listing(tuple(usable), pages.partial or bool(skipped))

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _one(self, schema: type[schemas.M], body: Any, method: str, path: str) -> schemas.M:
        try:
            return schemas.parse(schema, body)
        except schemas.SchemaError as exc:
            raise BadResponse(
                self._scrub(f"unexpected response from VPS.org ({exc})"),
                method=method,
                path=path,
            ) from None


__all__ = ["VpsApiError", "VpsClient", "httpx_timeout", "read_retry"]
