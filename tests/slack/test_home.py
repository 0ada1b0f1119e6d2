"""App Home: environments with counts, owner and savings; buttons only for who may use them."""

from __future__ import annotations

import pytest

from handlers.blocks.ids import ACTION_HOME_TEARDOWN
from tests.helpers import stored

from .conftest import CHANNEL, OPERATOR, STRANGER, SlackHarness

pytestmark = pytest.mark.lab


def _published(h: SlackHarness, user: str) -> dict:
    call = h.fake.wait_for(
        lambda: [c for c in h.fake.ok_calls("views.publish") if c.params["user_id"] == user]
    )[-1]
    return call.params["view"]


def _texts(view: dict) -> str:
    return "\n".join(b["text"]["text"] for b in view["blocks"] if b["type"] == "section")


def test_home_lists_environments_with_buttons_for_operators(harness: SlackHarness) -> None:
    h = harness
    h.command("deploy capture 2 as home-env")
    h.fake.wait_for(lambda: h.fake.ok_calls("files.completeUploadExternal"), timeout=60)

    assert h.event({"type": "app_home_opened", "user": OPERATOR, "tab": "home"}).status == 200
    view = _published(h, OPERATOR)
    shown = _texts(view)
    assert "*home-env*: 2 live clones" in shown and f"<@{OPERATOR}>" in shown
    assert "• capture: 2 ready" in shown and "Saves " in shown
    buttons = [e for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert {"action_id": ACTION_HOME_TEARDOWN, "value": "home-env"}.items() <= {
        k: v for b in buttons if b["action_id"] == ACTION_HOME_TEARDOWN for k, v in b.items()
    }.items()

    h.event({"type": "app_home_opened", "user": STRANGER, "tab": "home"})
    view = _published(h, STRANGER)
    assert "*home-env*" in _texts(view)
    actions = [
        e["action_id"] for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert ACTION_HOME_TEARDOWN not in actions

    # The button posts the usual confirmation plan into the environment's channel.
    h.click(ACTION_HOME_TEARDOWN, "home-env", OPERATOR, ts="")
    plan = h.fake.wait_for(
        lambda: [m for m in h.fake.messages.values() if m.text.startswith("Strip back home-env?")]
    )[0]
    assert plan.channel == CHANNEL


def test_home_shows_what_is_live_however_long_the_history(harness: SlackHarness) -> None:
    """A year of finished courses (written with SQL) stays out of the Home tab; `/clones
    history` shows them on request."""
    from pathlib import Path

    from tests.history import fill

    h = harness
    fill(Path(str(stored(h.core.repo).location)), environments=300)
    h.command("deploy capture 1 as home-live")
    h.fake.wait_for(lambda: h.fake.ok_calls("files.completeUploadExternal"), timeout=60)
    h.event({"type": "app_home_opened", "user": OPERATOR, "tab": "home"})
    shown = _texts(_published(h, OPERATOR))
    assert "*home-live*: 1 live clone" in shown
    assert "course-" not in shown and "more" not in shown

    h.command("history", user=STRANGER)
    answer = h.fake.wait_for(
        lambda: [
            c
            for c in h.fake.ok_calls("response_url")
            if "course-00299" in str(c.params.get("blocks"))
        ]
    )
    assert "stripped back; 20 clones made by" in str(answer[0].params["blocks"])
