"""`python -m benchmarks.idle_bot`: the bot's HTTP mode as `python -m bot` runs it, for measuring
memory while `handlers.app.create_bot` cannot be called (its HandlerContext wiring is mid-edit).

Same steps as handlers.app.main: load settings and tokens from the environment, bootstrap.build,
the Bolt app with every listener (through benchmarks.slackbot.build_context), http_server on $PORT.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from benchmarks.slackbot import build_context
from bot import bootstrap
from bot.settings import load_settings
from handlers.app import http_server, make_client, read_tokens


def main() -> int:
    logging.basicConfig(level=os.environ.get("CLONES_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    settings = load_settings()
    tokens = read_tokens(settings.slack)
    core = bootstrap.build(settings)
    client = make_client(settings.slack, tokens.bot_token)
    bot, wiring = build_context(core, client)
    print(f"wiring: {wiring}", file=sys.stderr, flush=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = http_server(bot.app, "127.0.0.1", tokens.port)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    stop.wait()
    server.shutdown()
    bot.ctx.jobs.shutdown(wait=True)
    core.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
