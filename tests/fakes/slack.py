"""The fake Slack on loopback is the demo's stand-in: one implementation, recording every call.

Its auth.test names the workspace of the recorded fixtures (tests/fixtures/slack), so the
requests the tests build from them come from the bot's own workspace; set `team_id` (on an
instance before the bot starts, or on the class) for another one."""

from bot import console
from bot.console import SlackCall, WebFault

FIXTURES_TEAM = "T0000TEST"  # team_id / team.id / user.team_id in tests/fixtures/slack/*.json


class SlackStandIn(console.SlackStandIn):
    team_id = FIXTURES_TEAM


__all__ = ["FIXTURES_TEAM", "SlackCall", "SlackStandIn", "WebFault"]
