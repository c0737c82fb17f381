"""Translate httpx responses and exceptions into the domain's VpsApiError tree."""

from __future__ import annotations

import json

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


def _detail(response: httpx.Response) -> str:
    """The API's own words: `detail`, or field errors joined as `field: message`."""
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return f"HTTP {response.status_code}"
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
    text = text.strip() or f"HTTP {response.status_code}"
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def error_from_response(response: httpx.Response, method: str, path: str) -> VpsApiError:
    status = response.status_code
    if 300 <= status < 400:
        detail = f"unexpected redirect (HTTP {status})"
        return BadResponse(detail, status=status, method=method, path=path)
    detail = _detail(response)
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


def error_from_exception(exc: httpx.HTTPError, method: str, path: str) -> VpsApiError:
    if isinstance(exc, httpx.TimeoutException):
        detail = "VPS.org did not answer in time"
    elif isinstance(exc, httpx.ConnectError):
        detail = "could not connect to VPS.org"
    else:
        detail = "the connection to VPS.org failed"
    return Unavailable(detail, method=method, path=path)
