"""`python -m bot`: run the Slack bot (Socket Mode or HTTP, see handlers.app)."""

from handlers.app import main

raise SystemExit(main())
