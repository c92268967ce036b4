"""What a run says while it runs: progress and each verdict as soon as it is known.

On a terminal, a progress bar on one line, redrawn at most ten times a second; elsewhere (a CI
log, `nohup`) one progress line at least every `LOG_EVERY_S` seconds, so a log never goes quiet
for long. A failed property is announced the moment it is shrunk and saved, with its whole
message, not at the end of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from harness.conformance import PropertyResult
from harness.profiles import Limits
from harness.search import SearchStats

LOG_EVERY_S = 10.0
REDRAW_EVERY_S = 0.1
BAR_WIDTH = 30


class Console:
    """Progress and verdicts on `out` (see the module docstring); `now` is the clock used to
    rate-limit output."""

    def __init__(self, out: TextIO, now: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.now = now
        self.tty = out.isatty()
        self._last_s = -1e9
        self._drawn = False

    def progress(self, stats: SearchStats, limits: Limits) -> None:
        if not self._due():
            return
        budget = f"/{limits.budget_s:.0f}s" if limits.budget_s else ""
        text = (
            f"{stats.examples}/{limits.examples} examples, {stats.events} events,"
            f" {stats.elapsed_s:.0f}s{budget}"
        )
        if self.tty:
            done = stats.examples / max(limits.examples, 1)
            if limits.budget_s:
                done = max(done, stats.elapsed_s / limits.budget_s)
            filled = min(BAR_WIDTH, int(BAR_WIDTH * done))
            self.out.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {text}  ")
            self._drawn = True
        else:
            self.out.write(f"harness: searching: {text}\n")
        self.out.flush()

    def status(self, text: str) -> None:
        """What the run is doing between examples (shrinking, confirming), rate-limited like
        the progress."""
        if not self._due():
            return
        if self.tty:
            self.out.write(f"\r{text[:98]:<98}")
            self._drawn = True
        else:
            self.out.write(f"harness: {text}\n")
        self.out.flush()

    def _due(self) -> bool:
        now = self.now()
        if now - self._last_s < (REDRAW_EVERY_S if self.tty else LOG_EVERY_S):
            return False
        self._last_s = now
        return True

    def verdict(self, result: PropertyResult) -> None:
        self._clear()
        after = f" after {result.found_after_s:.0f}s" if result.found_after_s is not None else ""
        self.out.write(
            f"harness: {result.name} FAILED{after} ({len(result.counterexample)} events,"
            f" reproduced {result.reproduced}): {result.message}\n"
            f"         saved to {result.failure_file}\n"
        )
        self.out.flush()

    def line(self, text: str) -> None:
        self._clear()
        self.out.write(text + "\n")
        self.out.flush()

    def done(self) -> None:
        self._clear()

    def _clear(self) -> None:
        if self._drawn:
            self.out.write("\r" + " " * 100 + "\r")
            self._drawn = False
