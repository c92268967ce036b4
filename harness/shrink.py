"""Shrinking a failing sequence further, by events.

The search's finding is the whole prefix of an example up to its failing step, most of which
does not matter. This pass works on the events themselves, as delta debugging does: it tries
dropping chunks, halving the chunk size down to single events, and keeps any shorter sequence
that is still valid on the model and still fails, cut after the step where it failed (what
follows a failure cannot matter to it). Each try is one replay on the target, so the number of
tries is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from harness.errors import InvalidEvent
from harness.events import Event, apply_all


def is_valid(events: Sequence[Event]) -> bool:
    try:
        apply_all(events)
    except InvalidEvent:
        return False
    return True


def shrink_events(
    events: Sequence[Event],
    fails: Callable[[list[Event]], int | None],
    max_tries: int = 200,
    max_seconds: float = 120.0,
    now: Callable[[], float] = time.monotonic,
) -> list[Event]:
    """A shortest-found subsequence of `events` that still fails.

    `fails` replays a candidate from an empty cluster and returns the length of the prefix after
    which it failed the same way (None: it held); it is called at most `max_tries` times, never
    on a sequence the model rejects, and no new try starts once `max_seconds` (read from `now`)
    have passed.
    """
    best = list(events)
    tries = 0
    give_up_at = now() + max_seconds

    def budget_left() -> bool:
        return tries < max_tries and now() < give_up_at

    chunk = max(len(best) // 2, 1)
    while chunk >= 1 and budget_left():
        progressed = False
        start = 0
        while start < len(best) and budget_left():
            candidate = best[:start] + best[start + chunk :]
            if candidate and is_valid(candidate):
                tries += 1
                failed_after = fails(candidate)
                if failed_after is not None:
                    best = candidate[:failed_after]
                    progressed = True
                    continue
            start += chunk
        if not progressed:
            chunk //= 2
    return best
