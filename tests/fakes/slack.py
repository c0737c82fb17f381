"""The fake Slack on loopback is the demo's stand-in: one implementation, recording every call."""

from bot.console import SlackCall, SlackStandIn, WebFault

__all__ = ["SlackCall", "SlackStandIn", "WebFault"]
