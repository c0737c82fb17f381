"""A request whose signature was not verified makes the bot send nothing anywhere: a malformed
timestamp or signature is a plain 401 before bolt (whose verifier would raise, not refuse, and
run the error handler, which posted to the request's response_url), and bolt's error handler
never answers a request that did not pass verification."""

import time
from urllib.parse import urlencode

import pytest
from slack_bolt.async_app import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import SIGNING_SECRET, Stack, fixture


def probe(stack: Stack, key: str) -> str:
    """The outside probe's body: a slash command whose response_url is the fake Slack's."""
    fields = fixture("slash-command.json") | {
        "text": "list 12345",
        "response_url": stack.slack.response_url(key),
    }
    return urlencode(fields)


def sign(body: str, stamp: str) -> str:
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return signature


async def nothing_happened(stack: Stack, sent: int) -> None:
    """No call to Slack (Web API or response_url) since `sent`, none to VPS.org, no audit row."""
    assert stack.slack.calls[sent:] == []
    assert stack.sim.calls == []
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        assert await uow.audit.events() == []


async def still_answers(stack: Stack, sent: int) -> None:
    """The positive control: a signed command is answered, and it is all Slack received."""
    ack, key = await stack.command("list 12345")
    assert ack.status_code == 200
    await stack.reply(key)
    assert {call.key for call in stack.slack.responses()} == {key}
    assert not [c for c in stack.slack.calls[sent:] if c.method not in ("response", "auth.test")]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "1.5", "X-Slack-Signature": "v0=junk"},  # the probe
        {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=junk"},
        {"X-Slack-Request-Timestamp": "１２３".encode(), "X-Slack-Signature": "v0=junk"},
        {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": "v0=junk"},
        {"X-Slack-Signature": "v0=junk"},
        {"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": "v0=junk"},
        {"X-Slack-Request-Timestamp": "NOW"},  # a valid-looking timestamp, no signature
        {"X-Slack-Request-Timestamp": "NOW", "X-Slack-Signature": ""},
        {"X-Slack-Request-Timestamp": "NOW", "X-Slack-Signature": "v0=caf\xe9".encode("latin-1")},
    ],
    ids=[
        "float",
        "letters",
        "non-ascii-digits",
        "empty",
        "no-timestamp",
        "huge",
        "no-signature",
        "empty-signature",
        "non-ascii-signature",
    ],
)
async def test_an_unsigned_request_is_a_401_and_nothing_is_sent(
    stack: Stack, headers: dict[str, str | bytes]
) -> None:
    sent = len(stack.slack.calls)
    if headers.get("X-Slack-Request-Timestamp") == "NOW":
        headers = headers | {"X-Slack-Request-Timestamp": str(int(time.time()))}
    answer = await stack.http.post(
        "/slack/events",
        content=probe(stack, "probe"),
        headers={"Content-Type": "application/x-www-form-urlencoded"} | headers,
    )
    assert answer.status_code == 401
    assert "Traceback" not in answer.text
    await nothing_happened(stack, sent)
    await still_answers(stack, sent)
    assert stack.slack.responses("probe") == []


FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
MALFORMED = {
    "float": lambda now: f"{now}.5",
    "non-ascii-digits": lambda now: str(now).translate(FULLWIDTH),
    "underscores": lambda now: f"{now // 1000}_{now % 1000:03d}",  # int() accepts it
}


@pytest.mark.parametrize("kind", MALFORMED)
async def test_a_signed_request_with_a_malformed_timestamp_is_a_401_not_a_500(
    stack: Stack, kind: str
) -> None:
    """Signed over the very header value the bot reads (HTTP headers arrive as latin-1)."""
    sent = len(stack.slack.calls)
    raw = MALFORMED[kind](int(time.time())).encode()
    body = probe(stack, "signed")
    answer = await stack.http.post(
        "/slack/events",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": raw,
            "X-Slack-Signature": sign(body, raw.decode("latin-1")),
        },
    )
    assert answer.status_code == 401
    await nothing_happened(stack, sent)
    await still_answers(stack, sent)
    assert stack.slack.responses("signed") == []


async def test_bolts_error_handler_never_answers_a_request_that_failed_verification(
    stack: Stack,
) -> None:
    """Behind the endpoint's check: the probe handed to bolt directly makes bolt's verifier
    raise and its error handler run, and that handler posts nothing to the response_url."""
    sent = len(stack.slack.calls)
    request = AsyncBoltRequest(
        body=probe(stack, "direct"),
        headers={
            "content-type": ["application/x-www-form-urlencoded"],
            "x-slack-request-timestamp": ["1.5"],
            "x-slack-signature": ["v0=junk"],
        },
    )
    answer = await stack.bot.slack.async_dispatch(request)
    assert answer.status == 500  # bolt's own answer once its verifier has raised
    await nothing_happened(stack, sent)
    await still_answers(stack, sent)
    assert stack.slack.responses("direct") == []
