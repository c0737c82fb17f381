"""Embedded VPS.org simulator (ASGI): the documented contract, seeded with the docs' examples.

Used by `python -m bot demo`, the tests and the benchmarks; `python -m bot simulator --port N`
serves it alone. Creates finish after `create_delay` seconds, restores after `restore_delay`;
limits, 400/401/404 and the trailing-slash rule behave as in the spec. Lists are paged as Django
REST framework pages them (`?page=N`, `page_size` items a page, absolute `next` and `previous`).
Faults can be injected in-process (`sim.inject(...)`) or over HTTP (`POST /_sim/faults`) for
tests in other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import URL, QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

MAX_SNAPSHOTS = 5
MAX_MANUAL_BACKUPS = 10
PAGE_SIZE = 100
_NAME = re.compile(r"[A-Za-z0-9_-]+")

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class SimServer:
    id: int
    name: str
    status: str = "running"
    restore_done_at: datetime | None = None

    def ref(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "status": self.status}


@dataclass
class SimObject:
    """A snapshot or a backup (backup_type is None for snapshots)."""

    id: int
    server_id: int
    status: str
    size_mb: int | None
    created_at: datetime
    description: str
    name: str = ""
    backup_type: str | None = None
    expires_at: datetime | None = None
    done_at: datetime | None = None
    final_status: str = "completed"


@dataclass
class Fault:
    """What to do instead of (or before) answering a matching request.

    kind: "status" answers `status` with `body`/`headers`; "hang" sleeps `delay` seconds and then
    answers normally; "malformed" answers 200 with a truncated JSON body; "lost_reply" carries
    the request out (after `delay`) and then answers `status` anyway, as a proxy that timed out
    after the backend acted would.
    """

    method: str
    path: str  # a regular expression matched against the path after /api/v1
    kind: str = "status"
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int | None = 1  # None: every matching request

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and re.fullmatch(self.path, path) is not None


@dataclass(frozen=True)
class SimCall:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str | None
    at: float = field(default_factory=time.monotonic)


class Simulator:
    """In-memory VPS.org; `app` is the ASGI application."""

    def __init__(
        self,
        *,
        token: str | None = None,
        create_delay: float = 5.0,
        restore_delay: float = 10.0,
        clock: Clock = _utcnow,
        seed: bool = True,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.token = token
        self.page_size = page_size  # items a list page holds (settable at any time)
        # test hook: rewrites each list page (`count`, `next`, `results`…) before it is sent
        self.edit_page: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.create_delay = create_delay
        self.restore_delay = restore_delay
        self.clock = clock
        self.servers: dict[int, SimServer] = {}
        self.objects: dict[str, dict[int, SimObject]] = {"snapshots": {}, "backups": {}}
        self.calls: list[SimCall] = []
        self.faults: list[Fault] = []
        self._released: asyncio.Event | None = None  # ends the "hang" faults under way
        # test hook: JSON objects listed as they are, beside the real ones (see `add_raw`)
        self.raw: dict[str, list[Any]] = {"snapshots": [], "backups": []}
        self._next_id = {"snapshots": 900, "backups": 600}
        if seed:
            self.seed()
        self.app = Starlette(routes=self._routes())

    # -- state -------------------------------------------------------------------------------

    def seed(self) -> None:
        """The docs' example data, plus a second server."""
        self.add_server(12345, "web-server-01")
        self.add_server(23456, "db-server-01")
        snap = self.add_snapshot
        snap(
            12345,
            "weekly-snapshot-2025-01-08",
            "Weekly snapshot",
            798,
            "2025-01-08T12:00:00Z",
            4856,
        )
        snap(
            12345,
            "pre-migration-snapshot",
            "Before major migration",
            801,
            "2025-01-15T18:30:00Z",
            5120,
        )
        snap(
            23456,
            "before-pg-upgrade",
            "Before PostgreSQL upgrade",
            805,
            "2025-01-20T09:15:00Z",
            20480,
        )
        back = self.add_backup
        back(12345, "automatic", "Automatic daily backup", 495, "2025-01-15T03:00:00Z", 4389)
        back(12345, "manual", "Pre-update backup", 499, "2025-01-14T10:30:00Z", 4456)
        back(12345, "automatic", "Automatic daily backup", 501, "2025-01-16T03:00:00Z", 4523)
        back(23456, "automatic", "Automatic daily backup", 503, "2025-01-16T04:00:00Z", 18211)

    def add_server(self, server_id: int, name: str, status: str = "running") -> SimServer:
        self.servers[server_id] = SimServer(server_id, name, status)
        return self.servers[server_id]

    def add_snapshot(
        self,
        server_id: int,
        name: str,
        description: str = "",
        snapshot_id: int | None = None,
        created_at: str | None = None,
        size_mb: int | None = 1024,
        status: str = "completed",
    ) -> SimObject:
        return self._add(
            "snapshots",
            SimObject(
                id=snapshot_id or self._new_id("snapshots"),
                server_id=server_id,
                status=status,
                size_mb=size_mb,
                created_at=_at(created_at) if created_at else self.clock(),
                description=description,
                name=name,
            ),
        )

    def add_backup(
        self,
        server_id: int,
        backup_type: str = "manual",
        description: str = "",
        backup_id: int | None = None,
        created_at: str | None = None,
        size_mb: int | None = 1024,
        status: str = "completed",
    ) -> SimObject:
        created = _at(created_at) if created_at else self.clock()
        expires = created + timedelta(days=31) if backup_type == "automatic" else None
        return self._add(
            "backups",
            SimObject(
                id=backup_id or self._new_id("backups"),
                server_id=server_id,
                status=status,
                size_mb=size_mb,
                created_at=created,
                description=description,
                backup_type=backup_type,
                expires_at=expires,
            ),
        )

    def add_raw(self, collection: str, data: Any) -> Any:
        """Test hook: list `data` in `collection` exactly as given, however malformed, first in
        every list it matches (its `server.id`, when it has one, is matched against the
        `server_id` filter). It is never created, deleted or counted against a limit."""
        self.raw[collection].append(data)
        return data

    def _raw_listed(self, collection: str, server_id: int | None) -> list[Any]:
        def server_of(data: Any) -> Any:
            server = data.get("server") if isinstance(data, dict) else None
            return server.get("id") if isinstance(server, dict) else None

        return [
            data
            for data in self.raw[collection]
            if server_id is None or server_of(data) in (None, server_id)
        ]

    def _add(self, collection: str, obj: SimObject) -> SimObject:
        self.objects[collection][obj.id] = obj
        self._next_id[collection] = max(self._next_id[collection], obj.id + 1)
        return obj

    def _new_id(self, collection: str) -> int:
        new = self._next_id[collection]
        self._next_id[collection] += 1
        return new

    def advance(self) -> None:
        """Finish every create and restore whose time has come."""
        now = self.clock()
        for collection in self.objects.values():
            for obj in collection.values():
                if obj.status == "in_progress" and obj.done_at is not None and obj.done_at <= now:
                    obj.status = obj.final_status
                    obj.size_mb = 2048 + obj.id % 1000 if obj.final_status == "completed" else None
        for server in self.servers.values():
            if server.restore_done_at is not None and server.restore_done_at <= now:
                server.status, server.restore_done_at = "running", None

    def finish_all(self) -> None:
        """Test helper: every create and restore in progress finishes now."""
        now = self.clock()
        for collection in self.objects.values():
            for obj in collection.values():
                if obj.status == "in_progress":
                    obj.done_at = now
        for server in self.servers.values():
            if server.restore_done_at is not None:
                server.restore_done_at = now
        self.advance()

    def inject(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def release_hangs(self) -> None:
        """Test helper: every "hang" fault under way answers now (later ones hang as asked)."""
        if self._released is not None:
            self._released.set()
            self._released = None

    async def _hang(self, seconds: float) -> None:
        if self._released is None:
            self._released = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), seconds)

    def calls_to(self, method: str, path: str | None = None) -> list[SimCall]:
        return [c for c in self.calls if c.method == method and (path is None or c.path == path)]

    # -- HTTP --------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/_sim/faults", self._admin_faults, methods=["POST", "DELETE"]),
            Route("/_sim/calls", self._admin_calls, methods=["GET", "DELETE"]),
            Route("/_sim/finish", self._admin_finish, methods=["POST"]),
            Route("/api/v1/{path:path}", self._dispatch, methods=["GET", "POST", "DELETE"]),
        ]

    async def _admin_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return Response(status_code=204)
        self.inject(Fault(**await request.json()))
        return JSONResponse({"faults": len(self.faults)}, status_code=201)

    async def _admin_calls(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.calls.clear()
            return Response(status_code=204)
        return JSONResponse([asdict(call) for call in self.calls])

    async def _admin_finish(self, request: Request) -> Response:
        self.finish_all()
        return Response(status_code=204)

    async def _dispatch(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = _MALFORMED
        self.calls.append(
            SimCall(
                request.method,
                path,
                dict(request.query_params),
                None if body is _MALFORMED else body,
                request.headers.get("authorization"),
            )
        )
        fault = self._take_fault(request.method, path)
        if fault is not None:
            if fault.kind == "hang":
                await self._hang(fault.delay)
            elif fault.kind == "malformed":
                return Response(
                    b'{"count": 2, "results": [{"id": 8', 200, media_type="application/json"
                )
            elif fault.kind == "lost_reply":
                await asyncio.sleep(fault.delay)
                self.advance()
                self._handle(request.method, path.strip("/").split("/"), request.url, body)
                return JSONResponse(fault.body, fault.status, headers=fault.headers)
            else:
                return JSONResponse(fault.body, fault.status, headers=fault.headers)
        denied = self._authenticate(request.headers.get("authorization"))
        if denied is not None:
            return denied
        if not path.endswith("/"):
            return RedirectResponse(f"/api/v1{path}/", status_code=301)
        if body is _MALFORMED:
            return _error(400, "JSON parse error.")
        self.advance()
        return self._handle(request.method, path.strip("/").split("/"), request.url, body)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _authenticate(self, header: str | None) -> Response | None:
        if not header or not header.startswith("Bearer "):
            return _error(401, "Authentication credentials were not provided.")
        if self.token is not None and header.removeprefix("Bearer ") != self.token:
            return _error(401, "Invalid token.")
        return None

    def _handle(self, method: str, parts: list[str], url: URL, body: Any) -> Response:
        route = (method, parts[0], len(parts))
        if route == ("GET", "servers", 1):
            servers = sorted(self.servers.values(), key=lambda s: s.id)
            return self._page([s.json() for s in servers], url)
        if route == ("GET", "servers", 2):
            server = self.servers.get(_int(parts[1]) or -1)
            return _error(404, "Not found.") if server is None else JSONResponse(server.json())
        if route == ("POST", "servers", 3) and parts[2] == "restore":
            return self._restore_backup(_int(parts[1]), body)
        if parts[0] in self.objects:
            collection = parts[0]
            if route[0] == "GET" and len(parts) == 1:
                return self._list(collection, url)
            if route[0] == "POST" and len(parts) == 1:
                return self._create(collection, body)
            if route[0] == "DELETE" and len(parts) == 2:
                return self._delete(collection, _int(parts[1]))
            if route == ("POST", "snapshots", 3) and parts[2] == "restore":
                return self._restore_snapshot(_int(parts[1]))
        return _error(404, "Not found.")

    def _list(self, collection: str, url: URL) -> Response:
        query = QueryParams(url.query)
        items = list(self.objects[collection].values())
        server_id: int | None = None
        if "server_id" in query:
            server_id = _int(query["server_id"])
            if server_id is None:
                return JSONResponse({"server_id": ["A valid integer is required."]}, 400)
            items = [o for o in items if o.server_id == server_id]
        if collection == "backups" and "backup_type" in query:
            if query["backup_type"] not in ("manual", "automatic"):
                value = query["backup_type"]
                return JSONResponse({"backup_type": [f'"{value}" is not a valid choice.']}, 400)
            items = [o for o in items if o.backup_type == query["backup_type"]]
        items.sort(key=lambda o: o.id, reverse=True)
        listed = [self._object_json(collection, o) for o in items]
        return self._page(self._raw_listed(collection, server_id) + listed, url)

    def _page(self, results: list[Any], url: URL) -> Response:
        """Page `?page=N` (1-based) of `results`, `page_size` a page, as Django REST framework
        answers: `count` is all of them; `next` and `previous` are absolute URLs that keep the
        other query parameters (the first page's without `page`). A page past the end is 404."""
        size = max(1, self.page_size)
        last = max(1, -(-len(results) // size))
        number = _int(QueryParams(url.query).get("page", "1"))
        if number is None or not 1 <= number <= last:
            return _error(404, "Invalid page.")

        def link(n: int) -> str:
            there = url.remove_query_params("page")
            return str(there if n == 1 else there.include_query_params(page=n))

        page = {
            "count": len(results),
            "next": link(number + 1) if number < last else None,
            "previous": link(number - 1) if number > 1 else None,
            "results": results[(number - 1) * size : number * size],
        }
        return JSONResponse(self.edit_page(page) if self.edit_page else page)

    def _object_json(self, collection: str, obj: SimObject) -> dict[str, Any]:
        data: dict[str, Any] = {"id": obj.id, "server": self.servers[obj.server_id].ref()}
        if collection == "snapshots":
            data["name"] = obj.name
        else:
            data["backup_type"] = obj.backup_type
        data.update(status=obj.status, size_mb=obj.size_mb, created_at=_iso(obj.created_at))
        if collection == "backups":
            data["expires_at"] = _iso(obj.expires_at)
        data["description"] = obj.description
        return data

    def _create(self, collection: str, body: Any) -> Response:
        if not isinstance(body, dict):
            return _error(400, "Invalid data. Expected a dictionary.")
        errors: dict[str, list[str]] = {}
        server_id = body.get("server_id")
        if not isinstance(server_id, int) or isinstance(server_id, bool):
            errors["server_id"] = ["A valid integer is required."]
        name = body.get("name", "")
        if collection == "snapshots" and not (isinstance(name, str) and _NAME.fullmatch(name)):
            errors["name"] = ["Enter a valid name: letters, numbers, hyphens or underscores."]
        description = body.get("description", "")
        if not isinstance(description, str):
            errors["description"] = ["Not a valid string."]
        if errors:
            return JSONResponse(errors, 400)
        assert isinstance(server_id, int)
        if server_id not in self.servers:
            return _error(404, "Server not found.")
        existing = [o for o in self.objects[collection].values() if o.server_id == server_id]
        if collection == "snapshots" and len(existing) >= MAX_SNAPSHOTS:
            return _error(400, f"Snapshot limit reached: at most {MAX_SNAPSHOTS} per server.")
        manual = [o for o in existing if o.backup_type == "manual"]
        if collection == "backups" and len(manual) >= MAX_MANUAL_BACKUPS:
            return _error(
                400, f"Backup limit reached: at most {MAX_MANUAL_BACKUPS} manual backups."
            )
        now = self.clock()
        obj = SimObject(
            id=self._new_id(collection),
            server_id=server_id,
            status="in_progress",
            size_mb=None,
            created_at=now,
            description=description,
            name=name if collection == "snapshots" else "",
            backup_type="manual" if collection == "backups" else None,
            done_at=now + timedelta(seconds=self.create_delay),
        )
        self._add(collection, obj)
        data = self._object_json(collection, obj)
        data["message"] = (
            "Snapshot is being created. This may take 3-10 minutes depending on server size."
            if collection == "snapshots"
            else "Backup is being created. This may take several minutes depending on server size."
        )
        return JSONResponse(data, 201)

    def _delete(self, collection: str, object_id: int | None) -> Response:
        if object_id is None or self.objects[collection].pop(object_id, None) is None:
            return _error(404, "Not found.")
        return Response(status_code=204)

    def _start_restore(self, server: SimServer, source: SimObject) -> str | None:
        if server.status != "running" or source.status != "completed":
            return "Server is not in a valid state for restoration."
        server.status = "restoring"
        server.restore_done_at = self.clock() + timedelta(seconds=self.restore_delay)
        return None

    def _restore_snapshot(self, snapshot_id: int | None) -> Response:
        snapshot = self.objects["snapshots"].get(snapshot_id or -1)
        if snapshot is None:
            return _error(404, "Not found.")
        server = self.servers[snapshot.server_id]
        refused = self._start_restore(server, snapshot)
        if refused:
            return _error(400, refused)
        return JSONResponse(
            {
                "status": "success",
                "message": "Server is being restored from snapshot. This may take 5-15 minutes.",
                "snapshot": {
                    "id": snapshot.id,
                    "name": snapshot.name,
                    "created_at": _iso(snapshot.created_at),
                },
                "server": server.json(),
            }
        )

    def _restore_backup(self, server_id: int | None, body: Any) -> Response:
        server = self.servers.get(server_id or -1)
        if server is None:
            return _error(404, "Server not found.")
        backup_id = body.get("backup_id") if isinstance(body, dict) else None
        if not isinstance(backup_id, int) or isinstance(backup_id, bool):
            return JSONResponse({"backup_id": ["A valid integer is required."]}, 400)
        backup = self.objects["backups"].get(backup_id)
        if backup is None:
            return _error(404, "Backup not found.")
        if backup.server_id != server.id:
            return _error(400, "Backup does not belong to this server.")
        refused = self._start_restore(server, backup)
        if refused:
            return _error(400, refused)
        return JSONResponse(
            {
                "status": "success",
                "message": "Server is being restored from backup.",
                "backup": {"id": backup.id, "created_at": _iso(backup.created_at)},
                "server": server.json(),
            }
        )


_MALFORMED = object()


def _int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status)
