"""`python -m bot`: run the Slack bot (Socket Mode or HTTP, see handlers.app)."""

from bot.bootstrap import slack

raise SystemExit(slack())
