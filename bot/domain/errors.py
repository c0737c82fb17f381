"""The error tree the rules and the VPS.org port speak; slack/errors.py turns it into text.

DomainError
├── UsageError           the command text does not fit the grammar
├── NotAllowed           the person or channel may not do this
└── VpsApiError          VPS.org answered with an error, or not at all
    ├── Unauthorized     401: the token is wrong (a configuration problem)
    ├── NotFound         404: the server, snapshot or backup does not exist
    ├── BadRequest       400 and other 4xx: the API refused the request
    │   └── LimitReached the per-server limit (5 snapshots, 10 manual backups)
    ├── RateLimited      429: VPS.org asks us to slow down
    ├── Unavailable      timeout, connection error, 5xx
    └── BadResponse      a body that is not the documented JSON, or a redirect
"""

from __future__ import annotations

from bot.domain.lifecycle import UNDER_WAY, Status
from bot.domain.model import Kind, OperationRequest


class DomainError(Exception):
    """Base of every error the bot explains to a person."""


class UsageError(DomainError):
    """The command text does not fit the grammar; `usage` is the help for that command."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class NotAllowed(DomainError):
    """The person or channel is not allowed to do this."""


class VpsApiError(DomainError):
    """VPS.org answered with an error (status is None when nothing came back)."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.method = method
        self.path = path

    @property
    def outcome_unknown(self) -> bool:
        """A mutation that may or may not have happened: never resend it blindly."""
        return False


class Unauthorized(VpsApiError):
    pass


class NotFound(VpsApiError):
    pass


class BadRequest(VpsApiError):
    pass


class LimitReached(BadRequest):
    pass


class RateLimited(VpsApiError):
    def __init__(
        self,
        detail: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(detail, status=status, method=method, path=path)
        self.retry_after = retry_after


class Unavailable(VpsApiError):
    """No usable answer: timeout, refused connection or a 5xx."""

    @property
    def outcome_unknown(self) -> bool:
        return self.method in ("POST", "DELETE")


class BadResponse(VpsApiError):
    """An answer that is not the documented JSON; treated as an error, never as empty or success."""

    @property
    def outcome_unknown(self) -> bool:
        return self.method in ("POST", "DELETE")


class AtLimit(NotAllowed):
    """The server already has as many snapshots or manual backups as VPS.org allows."""


class NotRequester(NotAllowed):
    """Only the person who asked may do this (confirm a delete, cancel a request)."""

    def __init__(self, requester_id: str) -> None:
        super().__init__("Only the person who asked can do this.")
        self.requester_id = requester_id


# Where a request is, said of "This request …" (AlreadyHandled).
WHERE_IT_IS: dict[Status, str] = {
    Status.PENDING_CONFIRMATION: "is still waiting for its requester to confirm it",
    Status.PENDING_APPROVAL: "is still waiting for approval",
    Status.APPROVED: "has already been approved",
    Status.EXECUTING: "is already under way",
    Status.RUNNING: "is already under way at VPS.org",
    Status.SUCCEEDED: "has already succeeded",
    Status.FAILED: "has already failed",
    Status.NEEDS_ATTENTION: "has already ended and needs someone to check it",
    Status.DENIED: "was already denied",
    Status.CANCELLED: "was already cancelled",
    Status.EXPIRED: "has already expired",
}


class AlreadyHandled(NotAllowed):
    """The request is no longer waiting for this decision; `status` is where it is now."""

    def __init__(self, status: Status) -> None:
        super().__init__(f"This request {WHERE_IT_IS[status]}.")
        self.status = status


class RequestExpired(NotAllowed):
    """The request waited too long and is no longer valid."""


class UnknownRequest(NotAllowed):
    """A button names a request that does not exist here."""


class SelfApproval(NotAllowed):
    """The requester cannot approve their own restore."""


class NotEligible(NotAllowed):
    """The voter is not among the configured approvers."""


class AlreadyVoted(NotAllowed):
    """This person has already voted on this request."""


class RestoreUnderWay(NotAllowed):
    """Another restore of the same server is executing or running: at most one at a time."""


class NothingToUndo(NotAllowed):
    """Undo pressed on a restore that has no safety snapshot to go back to (none was taken, or
    the restore never reached VPS.org)."""


class SafetySnapshotGone(NotAllowed):
    """Undo pressed after the restore's safety snapshot was deleted (by the bot after
    VPSBOT_SAFETY_SNAPSHOT_DAYS, or by someone at VPS.org)."""


class ConflictingRestore(NotAllowed):
    """A restore was asked for a server that already has one waiting for approval or under way
    (`existing`): refused when asked, and nothing is created. The message names that request
    in plain words (no Slack markup: the renderer escapes it, and may word it from `existing`
    itself, with the requester as a mention)."""

    def __init__(self, existing: OperationRequest) -> None:
        super().__init__(conflict_sentence(existing))
        self.existing = existing


def _clipped(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def conflict_sentence(existing: OperationRequest) -> str:
    """What ConflictingRestore says, e.g. 'web-server-01 (12345) already has a restore waiting
    for approval: request #17 (restore from snapshot `x`, asked by U…). Cancel or deny it
    first, or wait for it to finish.'"""
    server = existing.server
    if server is None:
        on = "This server"
    else:
        on = f"{_clipped(server.name)} ({server.id})" if server.name else f"Server {server.id}"
    # A snapshot is known by its name; a backup's "name" is its description (free text): its id.
    if existing.kind is Kind.SNAPSHOT and existing.target_name:
        source = f"snapshot `{_clipped(existing.target_name)}`"
    else:
        source = f"{existing.kind.value} {existing.target_id}"
    which = f"request #{existing.id} (restore from {source}, asked by {existing.requester_id})"
    if existing.status in UNDER_WAY:
        return f"{on} is already being restored: {which}. Wait for it to finish, then ask again."
    return (
        f"{on} already has a restore waiting for approval: {which}. Cancel or deny it first, "
        "or wait for it to finish."
    )


class DirectoryUnavailable(NotAllowed):
    """Slack could not say who is in a user group; a decision that needs it is refused."""

    def __init__(self, detail: str, purpose: str = "who may do this") -> None:
        super().__init__(
            f"vpsbot could not check {purpose}; nothing was done. Slack did not answer "
            f"({detail}); try again in a minute."
        )
        self.detail = detail


class OutcomeUnrecorded(DomainError):
    """VPS.org was sent a change, but the bot could not record what it answered."""

    def __init__(self, what: str) -> None:
        super().__init__(f"could not record {what}")
        self.what = what


class Busy(DomainError):
    """Too many requests are being handled; this one was not started."""


class Interrupted(DomainError):
    """The process handling a request stopped after it had begun; it is not done again."""
