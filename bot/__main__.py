"""`python -m bot`: run the Slack bot (Socket Mode or HTTP, see bot.slack)."""

from bot.slack import main

raise SystemExit(main())
