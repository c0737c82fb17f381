"""Translate httpx responses and exceptions into the domain's VpsApiError tree."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import httpx

from bot.domain.errors import (
    BadRequest,
    BadResponse,
    LimitReached,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    VpsApiError,
)

MAX_DETAIL = 300
REDACTED = "[redacted]"
TIMED_OUT = "VPS.org did not answer in time"
# `Bearer <credential>` anywhere, whoever's credential it is.
_BEARER = re.compile(r"\bbearer\s+\S+", re.IGNORECASE)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the bot's own credentials (`secrets`) or anything shaped like a bearer
    token: VPS.org's words are shown in Slack and logged, and an error page may quote the
    request it refused."""
    for secret in secrets:
        if len(secret) >= 6:  # a real token; a shorter "secret" would mangle the text
            text = text.replace(secret, REDACTED)
    return _BEARER.sub(f"Bearer {REDACTED}", text)


def _detail(status: int, content: bytes, secrets: Iterable[str]) -> str:
    """The API's own words: `detail`, or field errors joined as `field: message`; scrubbed of
    credentials before it is clipped, so no part of a token survives the cut."""
    try:
        body = json.loads(content or b"null")
    except ValueError:
        return f"HTTP {status}"
    if isinstance(body, dict):
        if isinstance(body.get("detail"), str):
            text = body["detail"]
        else:
            parts = []
            for field, messages in body.items():
                if isinstance(messages, list):
                    messages = " ".join(str(m) for m in messages)
                parts.append(f"{field}: {messages}")
            text = "; ".join(parts)
    elif isinstance(body, list):
        text = " ".join(str(item) for item in body)
    else:
        text = ""
    text = scrub(text, secrets).strip() or f"HTTP {status}"
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def error_from_response(
    response: httpx.Response,
    method: str,
    path: str,
    *,
    content: bytes | None = None,
    secrets: Iterable[str] = (),
) -> VpsApiError:
    """The error for a non-2xx answer. `content` is its body when it was streamed (default:
    `response.content`); `secrets` are scrubbed from the detail."""
    status = response.status_code
    if 300 <= status < 400:
        detail = f"unexpected redirect (HTTP {status})"
        return BadResponse(detail, status=status, method=method, path=path)
    detail = _detail(status, response.content if content is None else content, secrets)
    if status == 429:
        retry_after = _retry_after(response)
        return RateLimited(detail, retry_after=retry_after, method=method, path=path)
    error: type[VpsApiError]
    if status == 401:
        error = Unauthorized
    elif status == 404:
        error = NotFound
    elif status >= 500:
        error = Unavailable
    elif status == 400 and "limit" in detail.lower():
        error = LimitReached
    else:
        error = BadRequest
    return error(detail, status=status, method=method, path=path)


def error_from_exception(
    exc: httpx.HTTPError | TimeoutError, method: str, path: str
) -> VpsApiError:
    """A call that got no usable answer; TimeoutError is the call's own deadline passing."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        detail = TIMED_OUT
    elif isinstance(exc, httpx.ConnectError):
        detail = "could not connect to VPS.org"
    else:
        detail = "the connection to VPS.org failed"
    return Unavailable(detail, method=method, path=path)
