"""Slack's stand-in (the Web API and response_url posts) served alone, so that a benchmark's
measuring process spends no CPU answering the bot: Slack is never on the load generator's core.

Run: python -m bench.slack PORT
"""

from __future__ import annotations

import sys

import uvicorn

from bot.console import SlackStandIn


def main(port: int) -> None:
    slack = SlackStandIn()
    slack.record = False  # answers only: a long run would keep every call
    uvicorn.run(slack.app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]))
