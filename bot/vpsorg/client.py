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
import time
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

import httpx
from httpx_retries import Retry, RetryTransport

from bot import metrics
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
MAX_PAGES = 100  # a listing reads at most this many pages; one cut there is partial
NEXT_ELSEWHERE = (
    "VPS.org's next page of /{path} points away from VPS_API_URL/{path} ({why}); "
    "the listing was stopped and nothing was sent there"
)
FILTERS = frozenset({"server_id", "backup_type"})  # the list filters the bot sends
SAME_PAGE = "VPS.org returned the same page of /{path} twice; the listing was stopped"
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


class MeteredTransport(httpx.AsyncBaseTransport):
    """Times and counts every HTTP request sent to VPS.org (each retry and each page) for the
    metrics, by method, path template (below the base URL's path) and status."""

    def __init__(self, inner: httpx.AsyncBaseTransport, base_path: str) -> None:
        self._inner = inner
        self._base_path = base_path.rstrip("/")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(self._base_path) or "/"
        started = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            metrics.observe_call(request.method, path, None, time.perf_counter() - started)
            raise
        metrics.observe_call(
            request.method, path, response.status_code, time.perf_counter() - started
        )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


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
            transport=RetryTransport(
                transport=MeteredTransport(inner, self._base.path), retry=self._retry
            ),
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
        """Read every page of a `{count, results, next}` list, at most MAX_PAGES of them.

        Each `next` is checked before it is followed (`_next_page`), and a page asked for twice
        stops the listing: both are BadResponse. A listing cut at MAX_PAGES, or holding fewer
        items than VPS.org's `count`, is `partial`.
        """
        items: list[dict[str, Any]] = []
        here = self._base.join(path).copy_merge_params(params)
        seen = {self._page_key(here)}
        query: Mapping[str, str] = params
        count = first = 0
        for pages in range(1, MAX_PAGES + 1):
            body = await self._request("GET", path, params=query)
            page = self._one(schemas.PageIn, body, "GET", "/" + path)
            items.extend(page.results)
            count = page.count
            first = len(page.results) if pages == 1 else first
            following = self._next_page(page.next, path, here)
            if following is None:
                partial = count > len(items)
                return Listing(tuple(items), partial, count, pages, first if pages > 1 else 0)
            if self._page_key(following) in seen:
                raise BadResponse(SAME_PAGE.format(path=path), method="GET", path="/" + path)
            seen.add(self._page_key(following))
            # sent to this list's own path at VPS_API_URL; VPS.org chooses only the query
            here, query = following, following.params
        log.warning(
            "VPS.org's list /%s has more than %d pages; vpsbot read %d items (VPS.org counts %d) "
            "and stopped there: the listing is partial",
            path,
            MAX_PAGES,
            len(items),
            count,
        )
        return Listing(tuple(items), True, count, MAX_PAGES, first)

    def _next_page(self, link: str | None, path: str, here: httpx.URL) -> httpx.URL | None:
        """The page after `here`: VPS.org's `next` (resolved against `here`), when it is the
        same list at VPS_API_URL, that is the same scheme, host and port, no user name and the
        same path; only its query may differ. The token goes with every request, so any other
        `next` is a BadResponse and nothing is sent there. None when there is no next page."""
        if not link:
            return None

        def stopped(why: str) -> BadResponse:
            text = NEXT_ELSEWHERE.format(path=path, why=why)
            return BadResponse(text, method="GET", path="/" + path)

        try:
            target = here.join(link)
        except httpx.InvalidURL:
            raise stopped("not a URL") from None
        why = self._elsewhere(target, here)
        if why:
            raise stopped(why)
        if self._filters(target) != self._filters(here):  # another server's, another type's
            raise stopped("other filters")
        return target

    @staticmethod
    def _filters(url: httpx.URL) -> tuple[tuple[str, str], ...]:
        """What a list page is filtered by (the filters the bot sends: `server_id`,
        `backup_type`): the next page must keep them, whatever paging parameters it adds."""
        return tuple(sorted((k, v) for k, v in url.params.multi_items() if k in FILTERS))

    @staticmethod
    def _elsewhere(target: httpx.URL, here: httpx.URL) -> str:
        """How a next page's URL leaves the list at `here` ("" when it is the same list)."""
        if target.scheme != here.scheme:
            return "another scheme"
        if target.host != here.host:
            return "another host"
        if target.port != here.port:
            return "another port"
        if target.userinfo:
            return "a user name in it"
        if target.path != here.path:
            return "another path"
        return ""

    @staticmethod
    def _page_key(url: httpx.URL) -> tuple[tuple[str, str], ...]:
        """Which page of a list `url` asks for: its query, in any order (the rest is the list's)."""
        return tuple(sorted(url.params.multi_items()))

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
        partial = pages.partial or bool(skipped)
        return Listing(tuple(usable), partial, pages.count, pages.pages, pages.per_page)

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
