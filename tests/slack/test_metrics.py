"""`GET /metrics` after known traffic: commands by outcome, votes, VPS.org calls by method, path
template and status, requests by status, the outbox backlog. Counters are process-wide (the
default registry), so each test compares a scrape after its traffic with one before it."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import bootstrap
from bot.services import reports
from bot.slack import ids
from bot.vpsorg.simulator import Fault, Simulator
from tests.conftest import BOB, Stack, running_stack
from tests.fakes.slack import WebFault

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def stack(
    simulator: Simulator, served_simulator: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    simulator.restore_delay = 3600
    monkeypatch.setattr(bootstrap, "CACHE_GAUGES", 0.0)  # every scrape reads the database
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_poll_interval=0.2
    ) as built:
        yield built


async def scrape(stack: Stack) -> Samples:
    response = await stack.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def scrape_until(stack: Stack, wanted: Callable[[Samples], bool]) -> Samples:
    deadline = time.monotonic() + 20
    samples = await scrape(stack)
    while not wanted(samples) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        samples = await scrape(stack)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_counters_after_known_traffic(stack: Stack) -> None:
    before = await scrape(stack)
    await stack.ask("list 12345")
    await stack.ask("list 12345")
    await stack.ask("frobnicate")
    stack.sim.inject(Fault("GET", "/backups/", status=500, times=None))
    await stack.ask("list", command="/backup")
    ack, _ = await stack.command("restore 801 bad deploy")
    assert ack.status_code == 200
    card = await stack.until(lambda: stack.posts(thread=False), what="the approval card")
    request_id = next(b for b in card[0].data["blocks"] if b["type"] == "actions")["elements"][0][
        "value"
    ]
    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    await stack.until(
        lambda: stack.sim.calls_to("POST", "/snapshots/801/restore/"), what="the restore"
    )
    # until the restore's answer is recorded (it is then running; gauges are read every 5 s)
    after = await scrape_until(stack, lambda s: value(s, "vpsbot_requests", status="running") == 1)

    assert delta(before, after, "vpsbot_commands_total", command="/snapshot", outcome="ok") == 3
    assert (
        delta(before, after, "vpsbot_commands_total", command="/snapshot", outcome="usage_error")
        == 1
    )
    assert (
        delta(before, after, "vpsbot_commands_total", command="/backup", outcome="api_error") == 1
    )
    assert delta(before, after, "vpsbot_votes_total", result="approve") == 1
    # every HTTP request VPS.org received, by template (ids folded into {id})
    sent = stack.sim.calls
    snapshot_lists = sum(1 for c in sent if (c.method, c.path) == ("GET", "/snapshots/"))
    assert (
        delta(
            before,
            after,
            "vpsbot_vpsorg_requests_total",
            method="GET",
            path="/snapshots/",
            status="200",
        )
        == snapshot_lists
    )
    failed = sum(1 for c in sent if (c.method, c.path) == ("GET", "/backups/"))
    assert failed >= 1
    assert (
        delta(
            before,
            after,
            "vpsbot_vpsorg_requests_total",
            method="GET",
            path="/backups/",
            status="500",
        )
        == failed
    )
    assert (
        delta(
            before,
            after,
            "vpsbot_vpsorg_requests_total",
            method="POST",
            path="/snapshots/{id}/restore/",
            status="200",
        )
        == 1
    )
    assert (
        delta(
            before,
            after,
            "vpsbot_vpsorg_request_duration_seconds_count",
            method="POST",
            path="/snapshots/{id}/restore/",
        )
        == 1
    )
    # the tracker reads the restored server meanwhile: its reads are counted under one template
    assert delta(before, after, "vpsbot_vpsorg_requests_total", method="GET",
                 path="/servers/{id}/", status="200") >= 1  # fmt: skip
    # what the database holds, at the scrape
    assert value(after, "vpsbot_requests", status="running") == 1
    assert value(after, "vpsbot_operations_in_flight") == 1
    assert "vpsbot_outbox_backlog" in {name for name, _ in after}
    assert "vpsbot_tracker_cycle_duration_seconds_count" in {name for name, _ in after}


async def test_outbox_backlog_and_its_age_while_slack_is_down(stack: Stack) -> None:
    stack.slack.faults.append(
        WebFault(
            "chat.postMessage",
            status=500,
            body={"ok": False, "error": "internal_error"},
            times=1000,
        )
    )
    ack, _ = await stack.command("create 12345 nightly")
    assert ack.status_code == 200
    await stack.until(lambda: stack.sim.calls_to("POST", "/snapshots/"), what="the create")
    # the card waits in the outbox while Slack fails
    samples = await scrape_until(stack, lambda s: value(s, "vpsbot_outbox_backlog") >= 1)
    assert value(samples, "vpsbot_outbox_backlog") >= 1
    assert value(samples, "vpsbot_outbox_oldest_age_seconds") > 0
    # the create itself went on (VPS.org finishes it in 0.3 s): one request, running or done
    done = ("running", "succeeded")
    assert sum(value(samples, "vpsbot_requests", status=status) for status in done) == 1


async def test_a_database_that_cannot_be_read_says_so_instead_of_old_figures(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreadable(_: object) -> None:
        raise OSError("database is gone")

    monkeypatch.setattr(reports, "gauges", unreadable)
    samples = await scrape(stack)  # the counters still go out
    assert value(samples, "vpsbot_database_up") == 0
    assert math.isnan(value(samples, "vpsbot_outbox_backlog"))
    assert math.isnan(value(samples, "vpsbot_operations_in_flight"))
    by_status = [found for (name, _), found in samples.items() if name == "vpsbot_requests"]
    assert by_status
    assert all(math.isnan(found) for found in by_status)  # no old figures
    assert "vpsbot_vpsorg_request_duration_seconds_count" in {name for name, _ in samples}
