"""The Slack transport: the bolt app, its listeners and its HTTP endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_bolt.logger import get_bolt_logger
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.internals import (
    extract_channel_id,
    extract_enterprise_id,
    extract_team_id,
    extract_user_id,
    parse_body,
)
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from bot.domain.model import Kind
from bot.services import Services
from bot.slack import actions, home, ids
from bot.slack.actions import action_listener, on_unknown_action
from bot.slack.commands import (
    Arrival,
    Handoff,
    Work,
    acknowledge_then,
    command_listener,
    raw_identity,
    vpsbot_listener,
)
from bot.slack.errors import ADMITTED, handle_error
from bot.slack.inflight import InFlight
from bot.slack.notifier import is_retryable, slack_error_code

log = logging.getLogger(__name__)
IDENTIFY_AT_START = 5.0  # seconds for auth.test when the bot starts (start is never blocked longer)
IDENTIFY_ON_REQUEST = 2.0  # seconds for a retry while a request waits (Slack wants an ack in 3 s)


def web_client(token: str, base_url: str, *, retries: bool = True) -> AsyncWebClient:
    """Slack's Web API client with slack_sdk's own retry handlers (rate limits, connections);
    without them (`retries=False`) for a one-off check that reports rather than waits."""
    return AsyncWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        ]
        if retries
        else [],
    )


class SharedSession:
    """One aiohttp session for every Web API call and response_url post of the process, so
    connections to Slack are kept and reused (slack_sdk opens a new one per call without it)."""

    def __init__(self, *clients: AsyncWebClient) -> None:
        self._clients = clients
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Inside the running loop (aiohttp binds its session to it)."""
        self._session = aiohttp.ClientSession()
        for client in self._clients:
            client.session = self._session

    async def close(self) -> None:
        for client in self._clients:
            client.session = None
        if self._session is not None:
            await self._session.close()
            self._session = None


class Installation:
    """The workspace (and Enterprise Grid organisation) the bot is installed in, as Slack's
    `auth.test` names them: asked when the bot starts and, while unknown, again on a request
    (callers that arrive during an attempt share its answer)."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self.team_id: str | None = None
        self.enterprise_id: str | None = None
        self._attempts = 0
        self._lock: asyncio.Lock | None = None

    @property
    def known(self) -> bool:
        return bool(self.team_id or self.enterprise_id)

    async def identify(self, seconds: float) -> bool:
        """True once the installation is known; an attempt takes at most `seconds` and never
        raises (a failure is logged)."""
        if self.known:
            return True
        self._lock = self._lock or asyncio.Lock()
        attempts = self._attempts
        async with self._lock:
            if not self.known and self._attempts == attempts:  # else: take that attempt's answer
                self._attempts += 1
                await self._ask(seconds)
        return self.known

    async def _ask(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                answer = await self._client.auth_test()
        except SlackApiError as error:
            code = slack_error_code(error)
            if is_retryable(error) or not code:
                status = error.response.status_code if error.response is not None else 0
                log.warning(
                    "Slack is not answering auth.test properly (%s); requests wait for it",
                    _printable(code) or f"HTTP {status}",
                )
            else:
                log.warning("Slack refused auth.test (%s): check SLACK_BOT_TOKEN", _printable(code))
            return
        except Exception as error:  # Slack unreachable: requests are refused until it answers
            log.warning(
                "could not reach Slack at SLACK_API_URL for auth.test (%s)", type(error).__name__
            )
            return
        team, enterprise = answer.get("team_id"), answer.get("enterprise_id")
        if not isinstance(team, str) or not isinstance(enterprise, str | None):
            log.warning("auth.test named no workspace")
            return
        self.team_id, self.enterprise_id = team or None, enterprise or None
        log.info("installed in Slack workspace %s", self.team_id or self.enterprise_id)

    def admits(self, body: dict[str, Any], request: Ids) -> bool:
        """Every workspace id the payload carries (a command's `team_id`, a click's `team.id`
        and `user.team_id`, and bolt's reading of them) is this installation's, and so is any
        Enterprise Grid organisation it names. A payload that names no workspace is refused."""
        teams, enterprises = _workspaces(body, request)
        if enterprises and enterprises != {self.enterprise_id}:
            return False
        if self.team_id is None:  # an organisation-wide installation: its organisation only
            return bool(enterprises)
        return teams == {self.team_id}


def _printable(value: object) -> str:
    """An id or error code from Slack, for a log line (short, no spaces or control characters)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "?", str(value)[:40])


def _ids(*values: object) -> set[str]:
    return {value for value in values if isinstance(value, str) and value}


@dataclass(frozen=True)
class Ids:
    """What bolt reads from a payload into a request's context (`build_async_context`, with
    bolt's own extractors): the workspace, organisation, person and channel it names."""

    team_id: str | None
    enterprise_id: str | None
    user_id: str | None
    channel_id: str | None

    @classmethod
    def of_request(cls, request: AsyncBoltRequest) -> Ids:
        context = request.context
        return cls(context.team_id, context.enterprise_id, context.user_id, context.channel_id)

    @classmethod
    def of_body(cls, body: dict[str, Any]) -> Ids:
        return cls(
            extract_team_id(body),
            extract_enterprise_id(body),
            extract_user_id(body),
            extract_channel_id(body),
        )


def _workspaces(body: dict[str, Any], request: Ids) -> tuple[set[str], set[str]]:
    team, user, enterprise = body.get("team"), body.get("user"), body.get("enterprise")
    teams = _ids(
        body.get("team_id"),
        team.get("id") if isinstance(team, dict) else team,
        user.get("team_id") if isinstance(user, dict) else None,
        request.team_id,
    )
    enterprises = _ids(
        body.get("enterprise_id"),
        enterprise.get("id") if isinstance(enterprise, dict) else enterprise,
        request.enterprise_id,
    )
    return teams, enterprises


# The payload fields the listeners read: objects where Slack sends objects, strings where it
# sends strings. Anything else is refused before bolt matches a listener.
_OBJECTS = ("user", "team", "enterprise", "channel", "container", "view", "event")
_STRINGS = (
    "type",
    "response_url",
    "team_id",
    "enterprise_id",
    "user_id",
    "channel_id",
    "command",
    "event_id",
)


def shape_problem(body: object) -> str | None:
    """Why `body` is not shaped like a slash command, a button click or an event, or None."""
    if not isinstance(body, dict):
        return "the payload is not an object"
    for name in _OBJECTS:
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            return f"{name} is not an object"
        if isinstance(value, dict) and not isinstance(value.get("id", ""), str | None):
            return f"{name}.id is not a string"
    for name in _STRINGS:
        if not isinstance(body.get(name, ""), str | None):
            return f"{name} is not a string"
    if "actions" in body:
        actions = body["actions"]
        if not isinstance(actions, list) or not actions:
            return "actions is not a list of actions"
        if not all(isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions):
            return "an action is not an object with an action_id"
    return None


def _what(body: dict[str, Any]) -> str:
    """The command or the button a refused request was for, for its audit row."""
    actions = body.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        return str(actions[0].get("action_id", ""))
    return str(body.get("command") or body.get("type") or "")


class Gate(AsyncMiddleware):
    """Bolt's global middleware right after signature verification and before authorisation
    (`before_authorize`), for HTTP and Socket Mode alike: a payload of the wrong shape is a
    400; a request from another workspace is a 403, audited, and nothing is sent to Slack
    (not even to its response_url); while the installation is unknown every request is
    refused (503). A request let through is marked ADMITTED, the only kind the error handler
    answers."""

    def __init__(self, installation: Installation, services: Services) -> None:
        self.installation = installation
        self.services = services

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],  # bolt calls it by this name
    ) -> BoltResponse:
        refusal = await self.refusal(req.body, Ids.of_request(req))
        if refusal is not None:
            return refusal
        req.context[ADMITTED] = True
        return await next()

    async def refusal(self, body: dict[str, Any], ids: Ids) -> BoltResponse | None:
        """Why this request is refused (the answer to send), or None when it is let through;
        the one decision for bolt's middleware and the front's hand-over alike."""
        problem = shape_problem(body)
        if problem is not None:
            log.warning("refused a malformed Slack payload: %s", problem)
            return BoltResponse(status=400, body="malformed Slack request")
        if not await self.installation.identify(IDENTIFY_ON_REQUEST):
            log.warning("refused a Slack request: the bot's own workspace is not known yet")
            await self._audit(ids, body, "WorkspaceUnknown")
            return BoltResponse(status=503, body="vpsbot cannot confirm its Slack workspace yet")
        if not self.installation.admits(body, ids):
            teams, enterprises = _workspaces(body, ids)
            named = ", ".join(_printable(i) for i in sorted(teams | enterprises)[:4]) or "none"
            log.warning("refused a request from another Slack workspace (%s)", named)
            await self._audit(ids, body, "ForeignWorkspace")
            return BoltResponse(status=403, body="vpsbot is not installed in that workspace")
        return None

    async def _audit(self, ids: Ids, body: dict[str, Any], reason: str) -> None:
        teams, enterprises = _workspaces(body, ids)
        try:
            await self.services.commands.refused_request(
                str(ids.user_id or ""),
                str(ids.channel_id or ""),
                _what(body),
                reason,
                team_id=",".join(sorted(teams)),
                enterprise_id=",".join(sorted(enterprises)),
            )
        except Exception as error:  # the refusal stands; the audit row is what is lost
            log.error("could not audit a refused request: %s", type(error).__name__)


class HereAndNow:
    """The hand-over when there is no work process: the work runs in this process, each
    piece a task of its own in `InFlight` (as `acknowledge_then` does for Socket Mode)."""

    def __init__(self, works: dict[str, Work], inflight: InFlight, client: AsyncWebClient) -> None:
        self._works, self._inflight, self._client = works, inflight, client

    accepting = True  # InFlight answers "busy" past its backlog

    def hand(self, name: str, body: dict[str, Any], arrival: Arrival) -> None:
        self._inflight.start(self._works[name](body, self._client, arrival))


@dataclass(frozen=True)
class Parts:
    """What build_app made for an app: its gate (with the installation), its request
    verifier, and the work it started for people (drained at shutdown)."""

    gate: Gate
    verifier: SignatureVerifier | None
    inflight: InFlight
    works: dict[str, Work]
    handoff: Handoff | None = None


_parts: weakref.WeakKeyDictionary[AsyncApp, Parts] = weakref.WeakKeyDictionary()


def inflight_of(app: AsyncApp) -> InFlight:
    return _parts[app].inflight


def works_of(app: AsyncApp) -> dict[str, Work]:
    return _parts[app].works


async def identify(app: AsyncApp) -> bool:
    """Ask Slack (auth.test) which workspace `app` is installed in; called when the bot starts.
    A failure is logged and retried on the next request (refused until Slack answers)."""
    return await _parts[app].gate.installation.identify(IDENTIFY_AT_START)


def works(services: Services, inflight: InFlight) -> dict[str, Work]:
    """Every listener's work, by name (the command, the button's action_id, the view or the
    event it answers): what a work process runs for the requests handed to it."""
    s, i = services, inflight
    return {
        "/snapshot": command_listener(Kind.SNAPSHOT, s, i),
        "/backup": command_listener(Kind.BACKUP, s, i),
        "/vpsbot": vpsbot_listener(s, i),
        ids.DELETE_CONFIRM: action_listener(actions.confirm_delete, s, i),
        ids.DELETE_CANCEL: action_listener(actions.cancel_delete, s, i),
        ids.RESTORE_APPROVE: action_listener(actions.approve, s, i),
        ids.RESTORE_DENY: action_listener(actions.deny, s, i),
        ids.RESTORE_CANCEL: action_listener(actions.cancel_restore, s, i),
        ids.RESTORE_UNDO: action_listener(actions.undo, s, i),
        actions.DENY_VIEW: actions.deny_submission(s, i),  # Deny's reason modal
        "app_home_opened": home.opened_listener(s, i),
        ids.HOME_APPROVE: home.click_listener(home.approve, s, i),
        ids.HOME_DENY: home.deny_listener(s, i),
        ids.HOME_CANCEL: home.click_listener(home.cancel, s, i),
        UNKNOWN_ACTION: on_unknown_action,  # any other button
    }


UNKNOWN_ACTION = "*"  # the listener of any button vpsbot does not know
COMMANDS = ("/snapshot", "/backup", "/vpsbot")
VIEWS = (actions.DENY_VIEW,)
EVENTS = ("app_home_opened",)  # the manifest subscribes the bot to exactly these
LEGACY_ACTIONS = (
    "interactive_message",
    "dialog_submission",
    "dialog_cancellation",
    "workflow_step_edit",
)
ACTIONS = (
    ids.DELETE_CONFIRM, ids.DELETE_CANCEL, ids.RESTORE_APPROVE, ids.RESTORE_DENY,
    ids.RESTORE_CANCEL, ids.RESTORE_UNDO, ids.HOME_APPROVE, ids.HOME_DENY, ids.HOME_CANCEL,
)  # fmt: skip


def route(body: dict[str, Any]) -> str | None:
    """The listener `register` gives this payload to, by name, as bolt matches them: a slash
    command by its name, a button by its action_id (one vpsbot does not know: UNKNOWN_ACTION),
    a modal's submission by its callback_id, an event by its type; None for a payload no
    listener takes (bolt answers those 404). `body` passed `shape_problem`."""
    command = body.get("command")
    if command is not None:
        return command if command in COMMANDS else None
    kind = body.get("type")
    if kind == "block_actions":
        if not body.get("actions"):
            return None  # no action: no listener takes it
        action_id = body["actions"][0]["action_id"]
        known = action_id not in COMMANDS + VIEWS + EVENTS and action_id in ACTIONS
        return action_id if known else UNKNOWN_ACTION
    if kind in LEGACY_ACTIONS:  # bolt's catch-all action listener takes these too
        return UNKNOWN_ACTION
    if kind == "view_submission":
        callback_id = _object(body.get("view")).get("callback_id")
        return callback_id if callback_id in VIEWS else None
    if kind == "event_callback":
        event_type = _object(body.get("event")).get("type")
        return event_type if event_type in EVENTS else None
    return None


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def register(
    app: AsyncApp, services: Services, inflight: InFlight, handoff: Handoff | None = None
) -> dict[str, Work]:
    """Every listener the bot has, in one screen. Each acks at once and starts its work as a
    task of its own, or hands it to the work process (`acknowledge_then`), so an ack never
    waits behind other requests' work."""
    named = works(services, inflight)
    for name, work in named.items():
        kind = (
            app.command if name in COMMANDS
            else app.view if name in VIEWS
            else app.event if name in EVENTS
            else app.action
        )  # fmt: skip
        matcher: str | re.Pattern[str] = re.compile(".*") if name == UNKNOWN_ACTION else name
        kind(matcher)(acknowledge_then(name, work, services, inflight, handoff))
    app.error(handle_error)
    return named


class _TokenGivenTwice(logging.Filter):
    """bolt reads SLACK_BOT_TOKEN from the environment itself, and warns that it is unused
    when a client is given too: the client is made from that very token, so the warning
    would only alarm an operator."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def build_app(
    services: Services,
    *,
    bot_token: str,
    signing_secret: str,
    api_url: str,
    handoff: Handoff | None = None,
    turns: int = InFlight.TURNS,
) -> AsyncApp:
    """The bolt app with every listener; with `handoff`, the work after each ack is handed to
    the work process instead of running here. `turns`: how many pieces of work of each lane
    run at once (more in a work process, where no ack waits behind them)."""
    client = web_client(bot_token, api_url)
    bolt_log = get_bolt_logger(AsyncApp)
    if not any(isinstance(f, _TokenGivenTwice) for f in bolt_log.filters):
        bolt_log.addFilter(_TokenGivenTwice())
    gate = Gate(Installation(client), services)
    app = AsyncApp(
        signing_secret=signing_secret,
        client=client,
        name="vpsbot",
        # listeners only ack and start their work: the ack is answered as the listener returns
        process_before_response=True,
        before_authorize=gate,  # before bolt's own auth.test: a foreign request sends nothing
    )
    inflight = InFlight(turns)
    named = register(app, services, inflight, handoff)
    # no secret (Socket Mode): nothing can be verified, so /slack/events refuses everything
    verifier = SignatureVerifier(signing_secret) if signing_secret else None
    _parts[app] = Parts(gate, verifier, inflight, named, handoff)
    return app


MAX_TIMESTAMP_DIGITS = 12  # Slack's are 10; int() of a huge digit string raises


def _signed(verifier: SignatureVerifier | None, body: bytes, headers: Any) -> bool:
    """slack_sdk's verification, for a request whose headers are shaped as Slack sends them:
    an ASCII-digit timestamp and an ASCII signature (slack_sdk would raise, not refuse, on a
    float or a non-ASCII one, and bolt's error handler would then run for an unsigned request).
    A body that is not UTF-8 cannot carry a Slack signature."""
    stamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= MAX_TIMESTAMP_DIGITS):
        return False
    if verifier is None or not (signature and signature.isascii()):
        return False
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return verifier.is_valid_request(
        text, {"x-slack-request-timestamp": stamp, "x-slack-signature": signature}
    )


FORM = "application/x-www-form-urlencoded"  # slash commands and button clicks
JSON = "application/json"  # the Events API
MAX_CHALLENGE = 200  # Slack's url_verification challenges are about 50 characters


def _event_body(body: bytes) -> dict[str, Any] | None:
    """An Events API body: a JSON object (None for anything else)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _challenge(event: dict[str, Any]) -> Response | None:
    """Slack's `url_verification` handshake, answered with its challenge (a 400 for one that
    is not a short string); None for any other event body."""
    if event.get("type") != "url_verification":
        return None
    challenge = event.get("challenge")
    if not isinstance(challenge, str) or not 0 < len(challenge) <= MAX_CHALLENGE:
        return PlainTextResponse("malformed Slack request", 400)
    return JSONResponse({"challenge": challenge})


def http_endpoint(app: AsyncApp) -> Callable[[Request], Awaitable[Response]]:
    """`POST /slack/events`: the signature is verified (slack_sdk's verifier) before anything
    else, so nothing runs for an unsigned request, not even bolt's error handler; bolt then
    verifies it again, as it always does.

    Slack sends slash commands and button clicks form-encoded, and Events API deliveries as
    JSON: anything else is refused before bolt sees it. A signed `url_verification` is
    answered here (it names no workspace for the gate to check); other JSON bodies must be
    `event_callback`s. A body bolt cannot parse or of the wrong shape is a 400, never a stack
    trace."""
    parts = _parts[app]
    verifier = parts.verifier
    handoff = parts.handoff or HereAndNow(parts.works, parts.inflight, app.client)

    async def slack_events(request: Request) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in (FORM, JSON):
            return PlainTextResponse("expected a form-encoded or JSON Slack request", 415)
        body = await request.body()
        if not _signed(verifier, body, request.headers):
            return PlainTextResponse("invalid request", 401)
        if kind == JSON:
            event = _event_body(body)
            if event is None:
                return PlainTextResponse("malformed Slack request", 400)
            answer = _challenge(event)
            if answer is not None:
                return answer
            if event.get("type") == "app_rate_limited":  # Slack dropped events for a minute
                log.warning("Slack is rate-limiting the events it sends vpsbot")
                return PlainTextResponse("", 200)
            if event.get("type") != "event_callback":
                log.warning("refused a JSON Slack request that is not an event")
                return PlainTextResponse("malformed Slack request", 400)
        return await _hand_over(parts, handoff, body.decode(), kind)

    return slack_events


async def _hand_over(parts: Parts, handoff: Handoff, raw: str, content_type: str) -> Response:
    """The front's ack, for a request whose signature was verified: bolt's own parsing and the
    Gate's decision, then the request goes to the work process under the name of the listener
    bolt would have run (`route`), and Slack gets bolt's empty 200 at once. The work process
    runs that listener's work (`serve_handed`): bolt's dispatch is not needed to ack, and
    skipping it keeps the ack cheaper than a bare bolt app's."""
    try:
        body = parse_body(raw, content_type)
    except ValueError:
        log.warning("refused an unparsable Slack request")
        return PlainTextResponse("malformed Slack request", 400)
    problem = shape_problem(body)
    if problem is not None:
        log.warning("refused a malformed Slack payload: %s", problem)
        return PlainTextResponse("malformed Slack request", 400)
    if body.get("ssl_check") == "1":  # Slack checking the certificate: answered, nothing done
        return PlainTextResponse("", 200)
    refusal = await parts.gate.refusal(body, Ids.of_body(body))
    if refusal is not None:
        return PlainTextResponse(str(refusal.body), refusal.status)
    name = route(body)
    if name is None:
        log.warning("no listener for this Slack request (%s)", _printable(_what(body)))
        return PlainTextResponse("", 404)
    if not handoff.accepting:  # Slack tells the person it failed: nothing was taken on
        log.error("refused a Slack request: the work process has too many waiting")
        return PlainTextResponse("vpsbot is overloaded", 503)
    handoff.hand(name, body, Arrival(raw_identity(raw), parts.gate.services.life.clock()))
    return PlainTextResponse("", 200)
