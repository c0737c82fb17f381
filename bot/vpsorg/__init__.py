"""The VPS.org API: the typed client, its error mapping and the embedded simulator."""

from bot.vpsorg.client import VpsClient

__all__ = ["VpsClient"]
