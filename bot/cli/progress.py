"""Progress of a deployment, strip back or refresh in the terminal: a tqdm bar on a terminal,
plain lines otherwise (logs, CI)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from bot.domain.results import ProgressEvent

if TYPE_CHECKING:
    from tqdm import tqdm


class Progress:
    """A progress bar on a terminal; plain lines otherwise (logs, CI)."""

    def __init__(self, out: TextIO, enabled: bool) -> None:
        self.out = out
        self.enabled = enabled
        self.bar: tqdm[Any] | None = None
        self.tty = sys.stderr.isatty()

    def __enter__(self) -> Callable[[ProgressEvent], None]:
        return self.on_event

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def on_event(self, e: ProgressEvent) -> None:
        if not self.enabled:
            return
        if e.kind == "started":
            print(e.message, file=sys.stderr)
            if self.tty:
                from tqdm import tqdm  # imported by the commands that show a bar, when they do

                self.bar = tqdm(total=e.total, unit="vm", file=sys.stderr, dynamic_ncols=True)
            return
        if e.kind in ("clone_powered_on", "clone_customized", "finished"):
            self._stages(e)
            return
        if e.kind in ("clone_ready", "clone_failed"):
            if self.bar is not None:
                self.bar.update(1)
                if e.stages_text:
                    self.bar.set_postfix_str(_stages_postfix(e))
                else:
                    self.bar.set_postfix(ok=e.done, failed=e.failed)
            elif e.kind == "clone_failed" or (e.done + e.failed) % 10 == 0 or e.remaining == 0:
                eta = f", ETA {e.eta_s:.0f} s" if e.eta_s is not None and e.remaining else ""
                print(
                    f"  [{e.done + e.failed}/{e.total}] {e.done} ok, {e.failed} failed{eta}",
                    file=sys.stderr,
                )
            if e.kind == "clone_failed":
                msg = f"  {e.clone}: {e.message}"
                if self.bar is not None:
                    self.bar.write(msg, file=sys.stderr)
                else:
                    print(msg, file=sys.stderr)
        elif e.kind == "clone_retry" and self.bar is None:
            print(f"  retrying {e.clone}: {e.message}", file=sys.stderr)
        elif e.kind == "waiting":  # queued behind other runs of this process, or no longer
            line = f"  {e.waiting}" if e.waiting else "  vCenter has room again: going on"
            if self.bar is not None:
                self.bar.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr)

    def _stages(self, e: ProgressEvent) -> None:
        """A deployment that powers on: cloned / powered on / customized, on the bar, or as a
        line every tenth step of a stage and at the end."""
        if not e.stages_text:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(_stages_postfix(e))
            return
        step = e.powered_on if e.kind == "clone_powered_on" else e.customized
        if e.kind == "finished" or (step and step % 10 == 0):
            print(f"  {_stages_postfix(e)}", file=sys.stderr)


def _stages_postfix(e: ProgressEvent) -> str:
    return e.stages_text + (f" · failed {e.failed}" if e.failed else "")
