"""Prometheus metrics (prometheus-client): what the bot counts as it works, and what is read
from the database when `/metrics` is scraped. Every name starts with `vpsbot_`.

Counters and histograms live on the default registry, as prometheus-client's own examples do:
one process, one set (the tests read them with `REGISTRY.get_sample_value`, before and after).
When `serve` hands its work to a work process, the two share one set through prometheus-client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, named by `serve` before this module is imported),
and a scrape sums them; the database gauges are the most recent value set.
The gauges of what the database holds (requests by status, the outbox backlog) are set by
`refresh` just before a scrape renders them, so every instance reports the shared state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from bot.domain.lifecycle import Status

LATEST: Final = "mostrecent"  # a database gauge is what the last scrape read (multiprocess mode)
COMMANDS = Counter(
    "vpsbot_commands",
    "Slash commands handled, by command and outcome (ok, usage, refused, api_error, error…)",
    ["command", "outcome"],
)
VOTES = Counter("vpsbot_votes", "Votes on restore requests, by result", ["result"])
VPSORG_CALLS = Counter(
    "vpsbot_vpsorg_requests",
    "HTTP requests sent to VPS.org, by method, path template and status ('none': no answer)",
    ["method", "path", "status"],
)
VPSORG_SECONDS = Histogram(
    "vpsbot_vpsorg_request_duration_seconds",
    "Time for one HTTP request to VPS.org, by method and path template",
    ["method", "path"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CYCLE_SECONDS = Histogram(
    "vpsbot_tracker_cycle_duration_seconds",
    "Time for one tracker cycle (expire, remind, reconcile, schedules, follow, clean up)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TRACKER_CALLS = Counter(
    "vpsbot_tracker_vpsorg_calls", "VPS.org calls made by the tracker to follow operations"
)
REQUESTS = Gauge(
    "vpsbot_requests", "Requests in the database, by status", ["status"], multiprocess_mode=LATEST
)
IN_FLIGHT = Gauge(
    "vpsbot_operations_in_flight",
    "Requests under way at VPS.org (approved, executing, running)",
    multiprocess_mode=LATEST,
)
OUTBOX_BACKLOG = Gauge(
    "vpsbot_outbox_backlog", "Slack messages queued and not yet delivered", multiprocess_mode=LATEST
)
DATABASE_UP = Gauge(
    "vpsbot_database_up",
    "1 when the last scrape could read the database gauges, 0 when not",
    multiprocess_mode=LATEST,
)
OUTBOX_OLDEST = Gauge(
    "vpsbot_outbox_oldest_age_seconds",
    "Age of the oldest Slack message not yet delivered (0: none)",
    multiprocess_mode=LATEST,
)

log = logging.getLogger(__name__)
REFRESH_TIMEOUT = 2.0  # seconds a scrape waits for the database gauges
_ID = re.compile(r"/[0-9]+(?=/|$)")


def path_template(path: str) -> str:
    """`/snapshots/801/restore/` -> `/snapshots/{id}/restore/`: one label per endpoint, not per
    object (the query string is never part of it)."""
    return _ID.sub("/{id}", path.split("?", 1)[0])


def observe_call(method: str, path: str, status: int | None, seconds: float) -> None:
    template = path_template(path)
    VPSORG_CALLS.labels(method, template, str(status) if status is not None else "none").inc()
    VPSORG_SECONDS.labels(method, template).observe(seconds)


Refresh = Callable[[], Awaitable[None]]


def _unknown() -> None:
    """The database gauges say nothing rather than what an earlier scrape read."""
    nan = float("nan")
    for gauge in (IN_FLIGHT, OUTBOX_BACKLOG, OUTBOX_OLDEST):
        gauge.set(nan)
    for status in Status:
        REQUESTS.labels(status.value).set(nan)


async def render(
    refresh: Refresh | None = None, registry: CollectorRegistry = REGISTRY
) -> tuple[bytes, str]:
    """The text exposition (and its content type), after `refresh` set the database gauges
    (within REFRESH_TIMEOUT; when it fails, they are NaN and `vpsbot_database_up` is 0)."""
    if refresh is not None:
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT):
                await refresh()
        except Exception as error:
            log.warning("metrics: the database gauges could not be read (%s)", type(error).__name__)
            DATABASE_UP.set(0)
            _unknown()
        else:
            DATABASE_UP.set(1)
    return generate_latest(_shared() or registry), CONTENT_TYPE_LATEST


def _shared() -> CollectorRegistry | None:
    """In multiprocess mode, a registry that reads every process's values (the front's and the
    work process's); None otherwise."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return None
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    ProcessCollector(registry=registry)  # process_*: this process's own (serve's)
    return registry
