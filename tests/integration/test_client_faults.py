"""Faults at the wire (httpx.MockTransport), each mapped to its error; writes are never retried."""

import time
from collections.abc import Callable

import httpx
import pytest

from bot.domain.errors import (
    BadResponse,
    LimitReached,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from bot.vpsorg.client import VpsClient, read_retry

EMPTY = {"count": 0, "results": []}
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers from a script and counts the requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(handler: Handler) -> VpsClient:
    return VpsClient(
        "https://vps.test/api/v1",
        "secret-token",
        transport=httpx.MockTransport(handler),
        retry=read_retry(backoff_factor=0.01),
    )


async def test_a_read_timeout_is_unavailable_and_not_retried() -> None:
    recorder = Recorder(httpx.ReadTimeout("slow"))
    with pytest.raises(Unavailable, match="did not answer in time") as caught:
        await client(recorder).list_snapshots()
    assert len(recorder.requests) == 1
    assert not caught.value.outcome_unknown


async def test_a_get_is_retried_after_500_and_succeeds() -> None:
    recorder = Recorder(
        httpx.Response(500, text="<html>oops</html>"), httpx.Response(200, json=EMPTY)
    )
    assert (await client(recorder).list_snapshots()).items == ()
    assert len(recorder.requests) == 2


async def test_a_persistent_502_gives_up_after_capped_retries() -> None:
    recorder = Recorder(httpx.Response(502, text="Bad Gateway"))
    with pytest.raises(Unavailable) as caught:
        await client(recorder).list_backups()
    assert caught.value.status == 502
    assert len(recorder.requests) == 3  # the request and two retries


async def test_a_get_is_retried_on_connection_errors() -> None:
    recorder = Recorder(httpx.ConnectError("refused"), httpx.Response(200, json=EMPTY))
    await client(recorder).list_snapshots()
    assert len(recorder.requests) == 2


async def test_429_is_retried_after_the_retry_after_delay() -> None:
    recorder = Recorder(
        httpx.Response(429, headers={"Retry-After": "1"}, json={"detail": "slow down"}),
        httpx.Response(200, json=EMPTY),
    )
    started = time.monotonic()
    await client(recorder).list_snapshots()
    assert time.monotonic() - started >= 1.0
    assert len(recorder.requests) == 2


async def test_persistent_429_is_rate_limited_with_the_wait() -> None:
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "busy"}))
    with pytest.raises(RateLimited) as caught:
        await client(recorder).list_snapshots()
    assert caught.value.retry_after == 0


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, json={"detail": "boom"}),
        httpx.Response(503, text="unavailable"),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
    ],
)
async def test_writes_are_sent_once_and_their_outcome_is_unknown(
    answer: httpx.Response | Exception,
) -> None:
    recorder = Recorder(answer)
    vps = client(recorder)
    with pytest.raises(Unavailable) as caught:
        await vps.restore_snapshot(801)
    assert caught.value.outcome_unknown
    assert len(recorder.requests) == 1
    recorder.requests.clear()
    with pytest.raises(Unavailable):
        await vps.delete_backup(1)
    assert len(recorder.requests) == 1


async def test_429_on_a_write_is_not_retried() -> None:
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "0"}))
    with pytest.raises(RateLimited):
        await client(recorder).create_backup(12345)
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "body",
    [b'{"count": 2, "results": [{"id": 8', b"<html>ok</html>", b'{"results": "nope"}', b"[]"],
)
async def test_malformed_json_is_a_bad_response_never_an_empty_list(body: bytes) -> None:
    recorder = Recorder(httpx.Response(200, content=body))
    with pytest.raises(BadResponse, match="unexpected response"):
        await client(recorder).list_snapshots()


async def test_a_list_item_missing_a_field_is_a_bad_response() -> None:
    item = {"id": 1, "server": {"id": 1, "name": "x"}, "status": "completed"}  # no name/created_at
    recorder = Recorder(httpx.Response(200, json={"count": 1, "results": [item]}))
    with pytest.raises(BadResponse):
        await client(recorder).list_snapshots()


async def test_401_is_unauthorized_and_not_retried() -> None:
    recorder = Recorder(httpx.Response(401, json={"detail": "Invalid token."}))
    with pytest.raises(Unauthorized) as caught:
        await client(recorder).list_snapshots()
    assert len(recorder.requests) == 1
    assert "secret-token" not in str(caught.value)


async def test_404_and_400_limit_and_field_errors_are_mapped() -> None:
    with pytest.raises(NotFound, match="Not found"):
        await client(Recorder(httpx.Response(404, json={"detail": "Not found."}))).delete_snapshot(
            1
        )
    limit = httpx.Response(400, json={"detail": "Snapshot limit reached"})
    with pytest.raises(LimitReached):
        await client(Recorder(limit)).create_snapshot(1, "x")
    fields = httpx.Response(400, json={"name": ["Enter a valid name."], "server_id": ["Bad."]})
    with pytest.raises(Exception, match=r"name: Enter a valid name\.; server_id: Bad\."):
        await client(Recorder(fields)).create_snapshot(1, "x")


async def test_a_redirect_is_an_error_not_followed() -> None:
    recorder = Recorder(httpx.Response(301, headers={"Location": "https://elsewhere.test/"}))
    with pytest.raises(BadResponse, match="redirect"):
        await client(recorder).list_snapshots()
    assert len(recorder.requests) == 1


async def test_pages_are_followed_on_the_same_host_only() -> None:
    item = {
        "id": 1,
        "server": {"id": 1, "name": "a"},
        "name": "s",
        "status": "completed",
        "size_mb": 1,
        "created_at": "2025-01-01T00:00:00Z",
    }
    first = {"count": 2, "results": [item], "next": "https://vps.test/api/v1/snapshots/?page=2"}
    second = {"count": 2, "results": [item | {"id": 2}], "next": None}
    recorder = Recorder(httpx.Response(200, json=first), httpx.Response(200, json=second))
    listing = await client(recorder).list_snapshots()
    assert [s.id for s in listing.items] == [1, 2]
    assert not listing.partial
    assert recorder.requests[1].headers["Authorization"] == "Bearer secret-token"

    evil = first | {"next": "https://evil.test/steal"}
    recorder = Recorder(httpx.Response(200, json=evil))
    with pytest.raises(BadResponse, match="another host"):
        await client(recorder).list_snapshots()
    assert len(recorder.requests) == 1


async def test_a_short_list_without_next_is_partial() -> None:
    recorder = Recorder(httpx.Response(200, json={"count": 7, "results": []}))
    assert (await client(recorder).list_snapshots()).partial
