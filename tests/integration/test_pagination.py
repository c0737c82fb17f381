"""Paged lists, through the served simulator: every page is read in order; a `next` that leaves
VPS_API_URL, or asks for a page already read, stops the listing before anything is sent; at most
MAX_PAGES pages are read; a list cut short is partial, down to the Slack reply; lookups of one
item, the limit check and the tracker find what is on a later page."""

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.domain.errors import BadResponse, NotFound
from bot.domain.model import BackupType, Kind, Snapshot
from bot.services.kinds import find_target
from bot.serving import serving
from bot.vpsorg import client as client_module
from bot.vpsorg.client import VpsClient
from bot.vpsorg.simulator import Simulator
from tests.conftest import VPS_TOKEN, Stack

Page = dict[str, Any]
PARTIAL_NOTE = (
    "This list may be incomplete: VPS.org holds more than it returned, or returned some that "
    "vpsbot could not read."
)


def shown(call: Any) -> str:
    blocks = json.dumps(call.data.get("blocks", []), ensure_ascii=False)
    return blocks + str(call.data.get("text", ""))


def elsewhere_error(path: str, why: str) -> str:
    return (
        f"VPS.org's next page of /{path} points away from VPS_API_URL/{path} ({why}); "
        "the listing was stopped and nothing was sent there"
    )


def same_page_error(path: str) -> str:
    return f"VPS.org returned the same page of /{path} twice; the listing was stopped"


def queries(sim: Simulator, path: str) -> list[dict[str, str]]:
    return [c.query for c in sim.calls_to("GET", path)]


def first_page_next(link: str) -> Callable[[Page], Page]:
    """An `edit_page` hook: the first page's `next` is `link`."""
    return lambda page: page | {"next": link} if page["previous"] is None else page


@pytest.fixture
async def vps(served_simulator: str) -> AsyncIterator[VpsClient]:
    async with VpsClient(served_simulator, VPS_TOKEN) as client:
        yield client


@dataclass
class Elsewhere:
    """A second loopback server that records every request it receives."""

    url: str = ""
    hits: list[tuple[str, str, str | None]] = field(default_factory=list)


@pytest.fixture
async def elsewhere() -> AsyncIterator[Elsewhere]:
    other = Elsewhere()

    async def record(request: Request) -> Response:
        other.hits.append((request.method, request.url.path, request.headers.get("authorization")))
        return JSONResponse({"count": 0, "results": []})

    app = Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST", "DELETE"])])
    async with serving(app) as url:
        other.url = url
        yield other


def port_of(url: str) -> int:
    port = httpx.URL(url).port
    assert port is not None
    return port


# -- the simulator's pages ---------------------------------------------------------------------


async def test_the_simulator_pages_as_drf_with_absolute_links_keeping_the_filters(
    simulator: Simulator, served_simulator: str
) -> None:
    simulator.page_size = 1
    base = f"{served_simulator}/backups/?server_id=12345&backup_type=automatic"
    headers = {"Authorization": f"Bearer {VPS_TOKEN}"}
    async with httpx.AsyncClient(headers=headers) as http:
        first = (await http.get(base)).json()
        second = (await http.get(first["next"])).json()
        past = await http.get(f"{base}&page=3")
        nonsense = await http.get(f"{base}&page=x")
        zero = await http.get(f"{base}&page=0")
    assert first == {
        "count": 2,
        "next": f"{base}&page=2",
        "previous": None,
        "results": [first["results"][0]],
    }
    assert first["results"][0]["id"] == 501
    assert (second["count"], second["next"], second["previous"]) == (2, None, base)
    assert [item["id"] for item in second["results"]] == [495]
    for refused in (past, nonsense, zero):
        assert (refused.status_code, refused.json()) == (404, {"detail": "Invalid page."})


async def test_an_empty_list_is_one_page(simulator: Simulator, vps: VpsClient) -> None:
    listing = await vps.list_backups(23456, BackupType.MANUAL)
    assert (listing.items, listing.partial, listing.count, listing.pages) == ((), False, 0, 1)


# -- pages followed ----------------------------------------------------------------------------


async def test_every_page_is_read_in_order_with_the_filters_and_the_token(
    simulator: Simulator, vps: VpsClient
) -> None:
    simulator.page_size = 1
    listing = await vps.list_backups(12345)
    assert [b.id for b in listing.items] == [501, 499, 495]
    assert (listing.partial, listing.count, listing.pages, listing.per_page) == (False, 3, 3, 1)
    assert queries(simulator, "/backups/") == [
        {"server_id": "12345"},
        {"server_id": "12345", "page": "2"},
        {"server_id": "12345", "page": "3"},
    ]
    assert {c.authorization for c in simulator.calls} == {f"Bearer {VPS_TOKEN}"}


async def test_a_relative_next_is_read_from_the_same_list(
    simulator: Simulator, vps: VpsClient
) -> None:
    simulator.edit_page = first_page_next("?page=2")
    listing = await vps.list_snapshots()
    assert [s.id for s in listing.items] == [805, 801, 798]
    assert queries(simulator, "/snapshots/") == [{}, {"page": "2"}]


async def test_a_count_above_what_was_listed_makes_the_listing_partial(
    simulator: Simulator, vps: VpsClient
) -> None:
    simulator.edit_page = lambda page: page | {"count": page["count"] + 2}
    listing = await vps.list_snapshots()
    assert [s.id for s in listing.items] == [805, 801, 798]
    assert (listing.partial, listing.count, listing.pages) == (True, 5, 2)


async def test_the_slack_list_says_partial_when_vpsorg_holds_more(stack: Stack) -> None:
    whole = shown(await stack.ask("list"))
    assert "*Snapshots*, all servers: 3 items" in whole  # two pages, all read
    assert PARTIAL_NOTE not in whole

    stack.sim.edit_page = lambda page: page | {"count": page["count"] + 1}
    cut = shown(await stack.ask("list"))
    assert "*Snapshots*, all servers: 3 items" in cut
    assert PARTIAL_NOTE in cut


# -- a next that leaves VPS_API_URL --------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "why"),
    [
        ("http://localhost:{other}/api/v1/snapshots/?page=2", "another host"),
        ("//localhost:{other}/api/v1/snapshots/?page=2", "another host"),
        ("http://127.0.0.1:{sim}@localhost:{other}/api/v1/snapshots/?page=2", "another host"),
        ("https://127.0.0.1:{other}/api/v1/snapshots/?page=2", "another scheme"),
        ("http://127.0.0.1:{other}/api/v1/snapshots/?page=2", "another port"),
        ("http://vpsbot:pw@127.0.0.1:{sim}/api/v1/snapshots/?page=2", "a user name in it"),
        ("http://127.0.0.1:{sim}/api/v2/snapshots/?page=2", "another path"),
        ("http://127.0.0.1:{sim}/api/v1/snapshots/../../v2/snapshots/?page=2", "another path"),
        ("/api/v1/backups/?page=2", "another path"),
        ("http://[::1", "not a URL"),
    ],
)
async def test_a_next_away_from_vps_api_url_stops_the_listing_and_nothing_is_sent_there(
    simulator: Simulator,
    served_simulator: str,
    vps: VpsClient,
    elsewhere: Elsewhere,
    link: str,
    why: str,
) -> None:
    simulator.edit_page = first_page_next(
        link.format(sim=port_of(served_simulator), other=port_of(elsewhere.url))
    )
    with pytest.raises(BadResponse) as caught:
        await vps.list_snapshots()
    assert str(caught.value) == elsewhere_error("snapshots/", why)
    assert (caught.value.method, caught.value.path) == ("GET", "/snapshots/")
    assert elsewhere.hits == []
    assert len(simulator.calls) == 1  # the first page only


async def test_the_slack_reply_says_the_listing_was_stopped(
    stack: Stack, elsewhere: Elsewhere
) -> None:
    stack.sim.edit_page = first_page_next(f"{elsewhere.url}/api/v1/snapshots/?page=2")
    reply = await stack.ask("list 12345")
    assert reply.data["text"] == (
        ":warning: " + elsewhere_error("snapshots/", "another port") + ". Nothing was changed."
    )
    assert elsewhere.hits == []


def wire(*pages: Page) -> tuple[VpsClient, list[httpx.Request]]:
    """A client on https://vps.test/api/v1 whose answers are `pages`, in turn."""
    sent: list[httpx.Request] = []
    answers = list(pages)

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=answers.pop(0))

    transport = httpx.MockTransport(answer)
    client = VpsClient("https://vps.test/api/v1", "secret-token", transport=transport)
    return client, sent


@pytest.mark.parametrize(
    ("link", "why"),
    [
        ("http://vps.test/api/v1/snapshots/?page=2", "another scheme"),  # a downgrade
        ("https://vps.test:8443/api/v1/snapshots/?page=2", "another port"),
        ("https://vps.test.evil/api/v1/snapshots/?page=2", "another host"),
        ("https://vps.test@evil.test/api/v1/snapshots/?page=2", "another host"),
        ("https://vps.test/api/v10/snapshots/?page=2", "another path"),
    ],
)
async def test_https_is_never_left_for_http_or_another_port(link: str, why: str) -> None:
    client, sent = wire({"count": 2, "results": [], "next": link})
    with pytest.raises(BadResponse) as caught:
        await client.list_snapshots()
    assert str(caught.value) == elsewhere_error("snapshots/", why)
    assert len(sent) == 1


@pytest.mark.parametrize(
    "link",
    ["https://vps.test:443/api/v1/snapshots/?page=2", "https://VPS.test/api/v1/snapshots/?page=2"],
)
async def test_the_same_origin_spelt_otherwise_is_followed(link: str) -> None:
    client, sent = wire(
        {"count": 0, "results": [], "next": link}, {"count": 0, "results": [], "next": None}
    )
    await client.list_snapshots()
    assert [str(r.url) for r in sent] == [
        "https://vps.test/api/v1/snapshots/",
        "https://vps.test/api/v1/snapshots/?page=2",
    ]
    assert sent[1].headers["Authorization"] == "Bearer secret-token"


# -- a page read twice -------------------------------------------------------------------------


async def test_a_next_repeating_its_own_page_stops_the_listing(
    simulator: Simulator, vps: VpsClient
) -> None:
    simulator.page_size = 1
    simulator.edit_page = lambda page: (
        page | {"next": page["next"] and page["next"].replace("page=3", "page=2")}
    )
    with pytest.raises(BadResponse) as caught:
        await vps.list_snapshots()
    assert str(caught.value) == same_page_error("snapshots/")
    assert queries(simulator, "/snapshots/") == [{}, {"page": "2"}]


async def test_a_loop_back_to_the_first_page_stops_the_listing(
    simulator: Simulator, vps: VpsClient
) -> None:
    simulator.page_size = 1
    simulator.edit_page = lambda page: page | {"next": page["previous"] or page["next"]}
    with pytest.raises(BadResponse) as caught:
        await vps.list_snapshots()
    assert str(caught.value) == same_page_error("snapshots/")
    assert queries(simulator, "/snapshots/") == [{}, {"page": "2"}]


async def test_a_page_read_before_is_recognised_whatever_the_order_of_its_query(
    simulator: Simulator, served_simulator: str, vps: VpsClient
) -> None:
    simulator.page_size = 1
    first_again = f"{served_simulator}/backups/?backup_type=automatic&server_id=12345"
    simulator.edit_page = lambda page: (
        page | {"next": first_again if page["previous"] else page["next"]}
    )
    with pytest.raises(BadResponse) as caught:
        await vps.list_backups(12345, BackupType.AUTOMATIC)
    assert str(caught.value) == same_page_error("backups/")
    assert queries(simulator, "/backups/") == [
        {"server_id": "12345", "backup_type": "automatic"},
        {"server_id": "12345", "backup_type": "automatic", "page": "2"},
    ]


# -- the bound ----------------------------------------------------------------------------------


async def test_a_listing_stops_at_max_pages_partial_and_logged_once(
    simulator: Simulator,
    vps: VpsClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(client_module, "MAX_PAGES", 3)
    simulator.page_size = 1
    exactly = await vps.list_backups(12345)  # three pages: within the bound, whole
    assert ([b.id for b in exactly.items], exactly.partial) == ([501, 499, 495], False)

    simulator.add_snapshot(12345, "extra-1")
    simulator.add_snapshot(12345, "extra-2")
    simulator.calls.clear()
    with caplog.at_level(logging.WARNING, logger="bot.vpsorg.client"):
        listing = await vps.list_snapshots()
    assert [s.id for s in listing.items] == [901, 900, 805]
    assert (listing.partial, listing.count, listing.pages, listing.per_page) == (True, 5, 3, 1)
    assert queries(simulator, "/snapshots/") == [{}, {"page": "2"}, {"page": "3"}]
    assert [r.getMessage() for r in caplog.records] == [
        "VPS.org's list /snapshots/ has more than 3 pages; vpsbot read 3 items (VPS.org counts "
        "5) and stopped there: the listing is partial"
    ]


async def test_the_bound_cuts_a_list_whose_next_never_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "MAX_PAGES", 4)
    pages = [
        {"count": 1, "results": [], "next": f"https://vps.test/api/v1/servers/?page={n + 2}"}
        for n in range(5)
    ]
    client, sent = wire(*pages)
    listing = await client.list_servers()
    assert (listing.items, listing.partial, listing.pages) == ((), True, 4)
    assert len(sent) == 4


# -- what reads one item, counts, or follows ----------------------------------------------------


async def test_one_target_is_found_on_page_three(simulator: Simulator, vps: VpsClient) -> None:
    simulator.page_size = 1
    simulator.add_snapshot(12345, "newest", snapshot_id=810)
    found = await find_target(vps, Kind.SNAPSHOT, 798, 12345)
    assert isinstance(found, Snapshot)
    assert (found.id, found.name) == (798, "weekly-snapshot-2025-01-08")
    assert queries(simulator, "/snapshots/") == [
        {"server_id": "12345"},
        {"server_id": "12345", "page": "2"},
        {"server_id": "12345", "page": "3"},
    ]
    with pytest.raises(NotFound, match=r"^Snapshot 797 does not exist on VPS\.org\.$"):
        await find_target(vps, Kind.SNAPSHOT, 797, 12345)


async def test_a_delete_of_a_snapshot_on_the_last_page_is_asked(stack: Stack) -> None:
    stack.sim.page_size = 1
    await stack.command("delete 798")
    [card] = await stack.until(lambda: stack.posts(thread=False), what="the confirmation")
    assert "wants to delete snapshot `weekly-snapshot-2025-01-08` (id `798`)" in shown(card)
    assert queries(stack.sim, "/snapshots/") == [{}, {"page": "2"}, {"page": "3"}]


async def test_the_limit_counts_snapshots_on_every_page(stack: Stack) -> None:
    for i in range(3):
        stack.sim.add_snapshot(12345, f"extra-{i}")  # 5 of 5, in pages of 2
    reply = await stack.ask("create 12345 one-too-many")
    assert "already has 5 snapshots; VPS.org allows at most 5 per server" in shown(reply)
    assert "weekly-snapshot-2025-01-08 (798)" in shown(reply)  # from the third page
    assert queries(stack.sim, "/snapshots/") == [
        {"server_id": "12345"},
        {"server_id": "12345", "page": "2"},
        {"server_id": "12345", "page": "3"},
    ]
    assert stack.sim.calls_to("POST") == []


async def test_the_tracker_finds_a_new_snapshot_on_a_later_page(stack: Stack) -> None:
    stack.sim.page_size = 1
    for snapshot_id in (990, 991):  # listed first: the new one comes third
        stack.sim.add_raw(
            "snapshots",
            {
                "id": snapshot_id,
                "server": {"id": 23456, "name": "db-server-01"},
                "name": f"older-{snapshot_id}",
                "status": "completed",
                "size_mb": 1024,
                "created_at": "2025-01-10T08:00:00Z",
                "description": "",
            },
        )
    await stack.command("create 23456 nightly")
    [update] = await stack.until(lambda: stack.slack.api_calls("chat.update"), what="update")
    assert "*complete*" in shown(update)
    assert {"server_id": "23456", "page": "3"} in queries(stack.sim, "/snapshots/")
    assert [c.path for c in stack.sim.calls_to("POST")] == ["/snapshots/"]


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda link: link.replace("server_id=12345", "server_id=23456"),  # another server's
        lambda link: link.replace("server_id=12345&", "").replace("&server_id=12345", ""),
        lambda link: link + "&backup_type=automatic",
    ],
)
async def test_a_next_page_with_other_filters_is_not_followed(
    rewrite: Callable[[str], str],
) -> None:
    """A next link that changes or drops the filters would mix another server's items (or
    another type's) into this one's list: the listing stops. (Found by review.)"""
    sim = Simulator(token=VPS_TOKEN, page_size=1)
    sim.edit_page = lambda page: page | ({"next": rewrite(page["next"])} if page["next"] else {})
    async with serving(sim.app) as url:
        client = VpsClient(f"{url}/api/v1", VPS_TOKEN)
        try:
            with pytest.raises(BadResponse, match="other filters"):
                await client.list_snapshots(12345)
        finally:
            await client.aclose()
    assert len(sim.calls) == 1


async def test_paging_parameters_other_than_page_are_followed() -> None:
    """limit/offset paging (another DRF style) keeps the filters: followed."""
    sim = Simulator(token=VPS_TOKEN, page_size=1)
    sim.edit_page = lambda page: (
        page | ({"next": page["next"] + "&limit=1&offset=1"} if page["next"] else {})
    )
    async with serving(sim.app) as url:
        client = VpsClient(f"{url}/api/v1", VPS_TOKEN)
        try:
            listed = await client.list_snapshots(12345)
        finally:
            await client.aclose()
    assert [s.id for s in listed.items] == [801, 798]
