"""`python -m benchmarks.loadgen`: send signed slash commands at a fixed concurrency and time each
acknowledgement. Runs in its own process so the client does not share the bot's GIL.

Reads one JSON object on stdin: {"url", "secret", "response_url", "user", "channel",
"commands": [text, ...], "concurrency"}; prints one JSON object: {"results": [{"text",
"status", "ack_ms", "reply"}, ...], "started", "finished"} (times from time.time()).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.slack.signing import sign, slash_body


def send(job: dict[str, Any], text: str) -> dict[str, Any]:
    body = slash_body(text, job["user"], job["channel"], job["response_url"])
    headers = sign(body, job["secret"])
    request = urllib.request.Request(job["url"], data=body.encode(), headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, reply = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, reply = exc.code, exc.read().decode()
    except OSError as exc:  # reset, refused or timed out: counted, with its time, as status 0
        status, reply = 0, f"error: {exc}"
    elapsed = time.perf_counter() - started
    return {
        "text": text,
        "status": status,
        "ack_ms": round(elapsed * 1000, 2),
        "reply": reply[:300],
    }


def main() -> int:
    job = json.loads(sys.stdin.read())
    started = time.time()
    with ThreadPoolExecutor(max_workers=int(job["concurrency"])) as pool:
        results = list(pool.map(lambda t: send(job, t), job["commands"]))
    print(json.dumps({"results": results, "started": started, "finished": time.time()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
