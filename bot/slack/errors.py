"""One error handler: known errors become a friendly ephemeral reply; the rest are logged."""

from __future__ import annotations

import logging
from typing import Any

from bot.domain.errors import (
    BadResponse,
    Busy,
    ConflictingRestore,
    Interrupted,
    LimitReached,
    NotAllowed,
    NotFound,
    NotRequester,
    RateLimited,
    Unauthorized,
    Unavailable,
    UsageError,
    VpsApiError,
)
from bot.domain.lifecycle import UNDER_WAY
from bot.slack.blocks import Message, error_message, safe, user
from bot.slack.blocks.requests import on, source

log = logging.getLogger(__name__)
# Set in bolt's context by the gate (bot/slack/__init__.py), which runs after bolt verified the
# request and only for the bot's own workspace: the error handler answers no other request.
ADMITTED = "vpsbot_admitted"


def _api_error_text(error: VpsApiError) -> str:
    # VPS.org's detail names the status itself when it had nothing else to say ("HTTP 502")
    said = error.status is not None and f"HTTP {error.status}" in error.detail
    code = f" (HTTP {error.status})" if error.status and not said else ""
    detail = safe(error.detail, 300)
    if isinstance(error, Unauthorized):
        return (
            ":closed_lock_with_key: VPS.org rejected the bot's credentials"
            f"{code}. This is a configuration problem: an admin needs to check "
            "`VPS_API_TOKEN`. Nothing was changed."
        )
    if isinstance(error, NotFound):
        return (
            f":mag: {detail}" if error.detail != "Not found." else ":mag: VPS.org has no such item."
        )
    if isinstance(error, LimitReached):
        return f":no_entry: VPS.org refused: {detail}{code}. Nothing was created."
    if isinstance(error, RateLimited):
        wait = f" in {int(error.retry_after)} s" if error.retry_after else " in a minute"
        return f":hourglass: VPS.org is busy (rate limited); try again{wait}. Nothing was changed."
    if error.outcome_unknown:
        return (
            f":warning: VPS.org did not confirm the request ({detail}{code}). It may or may not "
            "have happened: check with `list` before trying again."
        )
    if isinstance(error, Unavailable):
        return f":warning: VPS.org is not answering properly ({detail}{code}). Nothing was changed."
    if isinstance(error, BadResponse):
        return f":warning: {detail}. Nothing was changed."
    return f":no_entry: VPS.org refused the request: {detail}{code}."


def _conflict_text(error: ConflictingRestore) -> str:
    """The restore in the way, named as its card names it: `#N`, the server, the source and
    who asked."""
    other = error.existing
    which = (
        f"request #{other.id} (restore from {source(other)}, asked by {user(other.requester_id)})"
    )
    if other.status in UNDER_WAY:
        return (
            f":no_entry: {on(other)} is already being restored: {which}. Nothing was asked: "
            "wait for it to finish, then ask again."
        )
    return (
        f":no_entry: {on(other)} already has a restore waiting for approval: {which}. Nothing "
        "was asked: cancel or deny that one first, or wait for it to expire."
    )


def describe(error: BaseException) -> Message:
    """The reply a person gets for `error`."""
    if isinstance(error, UsageError):
        return error_message(f":warning: {safe(error.message, 300)}", error.usage)
    if isinstance(error, Busy):
        return error_message(
            ":hourglass: vpsbot is handling many requests right now, so it did not start this "
            "one. Nothing was changed; try again in a minute."
        )
    if isinstance(error, Interrupted):
        return error_message(
            ":warning: vpsbot restarted its work while it was handling this, so it stopped "
            "part-way and was not done a second time. Anything it had started shows in this "
            "channel and in `/vpsbot pending`; check there before trying again."
        )
    if isinstance(error, ConflictingRestore):
        return error_message(_conflict_text(error))
    if isinstance(error, NotRequester):
        return error_message(f":no_entry: Only {user(error.requester_id)}, who asked, can do this.")
    if isinstance(error, NotAllowed):
        return error_message(f":no_entry: {safe(str(error), 300)}")
    if isinstance(error, VpsApiError):
        return error_message(_api_error_text(error))
    return error_message(
        ":boom: Something went wrong inside vpsbot; it has been logged. Nothing was changed."
    )


def log_error(error: Exception) -> None:
    """Known errors in one line (never a secret: the messages are ours or VPS.org's `detail`);
    anything else in one line too, with its traceback at LOG_LEVEL=DEBUG."""
    if isinstance(error, Unauthorized):
        log.error("VPS.org answered 401: check the VPS_API_TOKEN setting")
    elif isinstance(error, VpsApiError):
        if error.status is None:  # no answer at all: where the bot looked is what to check
            what = f"{error.detail} (check VPS_API_URL)"
        elif f"HTTP {error.status}" in error.detail:  # VPS.org said nothing more than that
            what = error.detail
        else:
            what = f"HTTP {error.status}: {error.detail}"
        log.warning("VPS.org %s %s failed: %s", error.method, error.path, what)
    elif isinstance(error, UsageError | NotAllowed | Busy):
        log.info("refused: %s", type(error).__name__)
    elif log.isEnabledFor(logging.DEBUG):  # the traceback only when asked for (README)
        log.error("listener failed", exc_info=error)
    else:
        log.error("listener failed: %s (LOG_LEVEL=DEBUG for the traceback)", type(error).__name__)


async def handle_error(error: Exception, context: Any, respond: Any) -> None:
    """Bolt's @app.error handler, for anything that fails before a listener could ack.
    (After `ack()` the listeners answer themselves: bolt's async runner drops the HTTP
    response when a listener fails right after acking.) It answers only a request that was
    verified and is from the bot's workspace: the response_url of any other is not Slack's
    to trust, so it is never posted to."""
    log_error(error)
    if respond is not None and context is not None and context.get(ADMITTED) is True:
        try:
            await respond(
                response_type="ephemeral", replace_original=False, **describe(error).as_kwargs()
            )
        except Exception:
            log.warning("could not tell the person about an error")
