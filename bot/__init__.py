"""vpsbot: manage VPS.org backups and snapshots from Slack, with two-person restores."""
