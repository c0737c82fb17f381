"""The fake Slack on loopback is the demo's stand-in: one implementation, recording every call.

Its auth.test names the workspace of the recorded fixtures (tests/fixtures/slack), so the
requests the tests build from them come from the bot's own workspace; set `team_id` (on an
instance before the bot starts, or on the class) for another one.

Like Slack, it refuses a message whose blocks are not valid Block Kit (checked with slack_sdk's
own models): a Web API call is answered `{"ok": false, "error": "invalid_blocks"}` and a
response_url post HTTP 400, and neither is recorded in `calls` as delivered, so a test waiting
for that message fails. Each refusal is logged as an error and kept in the instance's
`invalid_blocks` and in `SlackStandIn.refused`, for every stand-in of the process, which
`every_message_valid()` checks is empty at the end of a test."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot import console
from bot.console import SlackCall, WebFault

FIXTURES_TEAM = "T0000TEST"  # team_id / team.id / user.team_id in tests/fixtures/slack/*.json
MAX_BLOCKS = 50  # Slack's limit for one message
# The Web API methods that carry a message's blocks.
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")

log = logging.getLogger(__name__)


def validate_deep(item: JsonObject) -> None:
    """`item.validate_json()`, and the same for every object in it: slack_sdk's validate_json
    checks an object's own limits only, not those of its elements (a button's 75 characters,
    a confirm dialog's 300). Raises SlackObjectFormationError."""
    item.validate_json()
    for name in sorted(item.attributes):
        value = getattr(item, name, None)
        for part in value if isinstance(value, list) else [value]:
            if isinstance(part, JsonObject):
                validate_deep(part)


def block_kit_errors(blocks: Any) -> list[str]:
    """What Slack would refuse in a message's `blocks` (a list, or the JSON of one), checked
    with slack_sdk's models: `Block.parse(block).validate_json()` for each block and for every
    element and text object in it, and the message's limit of 50 blocks."""
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return ["blocks is not JSON"]
    if not isinstance(blocks, list):
        return [f"blocks is a {type(blocks).__name__}, not a list"]
    errors = [f"{len(blocks)} blocks (at most {MAX_BLOCKS})"] if len(blocks) > MAX_BLOCKS else []
    for index, block in enumerate(blocks):
        try:
            parsed = Block.parse(block) if isinstance(block, dict) else None
            if parsed is None:
                raise SlackObjectFormationError("not a block of a known type")
            validate_deep(parsed)
        except (SlackObjectFormationError, TypeError, ValueError, KeyError) as error:
            errors.append(f"blocks[{index}] ({_type_of(block)}): {error}")
    return errors


def _type_of(block: Any) -> str:
    return str(block.get("type")) if isinstance(block, dict) else type(block).__name__


@dataclass(frozen=True)
class SharedFile:
    """A file uploaded with Slack's external upload and shared by files.completeUploadExternal."""

    file_id: str
    title: str
    content: bytes
    channel_id: str
    initial_comment: str


@dataclass(frozen=True)
class Refused:
    """A message the stand-in refused for its blocks: where it was sent, what, and why."""

    method: str  # a Web API method, or "response" for a response_url post
    data: dict[str, Any]
    errors: list[str]


class SlackStandIn(console.SlackStandIn):
    team_id = FIXTURES_TEAM
    refused: ClassVar[list[Refused]] = []  # by every stand-in in this process

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invalid_blocks: list[Refused] = []  # by this one
        # Slack's external file upload: files.getUploadURLExternal names an upload_url on
        # this server, the bytes are posted there, files.completeUploadExternal shares them
        self.uploads: dict[str, bytes] = {}  # file id -> the bytes posted to its upload_url
        self.shared: list[SharedFile] = []  # files completed, with where they were shared
        self.app.router.routes.append(
            Route("/upload/{file_id}", self._upload, methods=["POST", "PUT"])
        )

    def _refuse(self, method: str, data: dict[str, Any]) -> bool:
        """Record and log a message with invalid blocks; False when its blocks are valid."""
        if "blocks" not in data:
            return False
        errors = block_kit_errors(data["blocks"])
        if not errors:
            return False
        refused = Refused(method, data, errors)
        self.invalid_blocks.append(refused)
        SlackStandIn.refused.append(refused)
        log.error("fake Slack: invalid_blocks in %s: %s", method, "; ".join(errors))
        return True

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        if method in MESSAGE_METHODS and self._refuse(method, await _data(request)):
            return JSONResponse({"ok": False, "error": "invalid_blocks"})
        return await super()._api(request)  # reads the body again: Starlette keeps it

    def _answer(self, method: str, data: dict[str, Any]) -> dict[str, Any]:
        if method == "files.getUploadURLExternal":
            file_id = f"F{len(self.uploads) + len(self.shared) + 1:07d}"
            self.uploads.setdefault(file_id, b"")
            return {
                "ok": True,
                "upload_url": f"{self.base_url}/upload/{file_id}",
                "file_id": file_id,
            }
        if method == "files.completeUploadExternal":
            return self._complete_upload(data)
        return super()._answer(method, data)

    async def _upload(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if file_id not in self.uploads:
            return PlainTextResponse("no such upload", status_code=404)
        self.uploads[file_id] = await request.body()
        return PlainTextResponse(f"OK - {len(self.uploads[file_id])}")

    def _complete_upload(self, data: dict[str, Any]) -> dict[str, Any]:
        try:
            files = json.loads(str(data.get("files", "[]")))
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        done = []
        for item in files:
            file_id = str(item.get("id", "")) if isinstance(item, dict) else ""
            if file_id not in self.uploads:
                return {"ok": False, "error": "file_not_found"}
            title = str(item.get("title") or "")
            self.shared.append(
                SharedFile(
                    file_id,
                    title,
                    self.uploads[file_id],
                    str(data.get("channel_id", "")),
                    str(data.get("initial_comment", "")),
                )
            )
            done.append({"id": file_id, "title": title})
        return {"ok": True, "files": done}

    async def _response(self, request: Request) -> Response:
        try:
            data = json.loads(await request.body())
        except ValueError:
            data = None
        if isinstance(data, dict) and self._refuse("response", data):
            return PlainTextResponse("invalid_blocks", status_code=400)
        return await super()._response(request)


async def _data(request: Request) -> dict[str, Any]:
    """A Web API call's arguments: a JSON body, or form fields and the query string."""
    raw = (await request.body()).decode()
    if request.headers.get("content-type", "").startswith("application/json"):
        data = json.loads(raw or "{}")
        return data if isinstance(data, dict) else {}
    return dict(parse_qsl(raw)) | dict(request.query_params)


@contextmanager
def every_message_valid() -> Iterator[None]:
    """Fail if any stand-in refused a message for its blocks while the block ran (an autouse
    fixture of a test module wraps each test in it)."""
    before = len(SlackStandIn.refused)
    yield
    refused = SlackStandIn.refused[before:]
    assert not refused, "the bot sent invalid Block Kit: " + "; ".join(
        f"{r.method}: {', '.join(r.errors)}" for r in refused
    )


__all__ = [
    "FIXTURES_TEAM",
    "Refused",
    "SharedFile",
    "SlackCall",
    "SlackStandIn",
    "WebFault",
    "block_kit_errors",
    "every_message_valid",
    "validate_deep",
]
