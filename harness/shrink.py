"""Shrinking a failing sequence further, by events.

Hypothesis shrinks the *choices* behind a sequence, which can leave events that do not matter
(it prefers the first rule, so a counterexample may open with pods it never needed). This pass
works on the events themselves, as delta debugging does: it tries dropping chunks, halving the
chunk size down to single events, and keeps any shorter sequence that is still valid on the model
and still fails. Each try is one replay on the target, so the number of tries is bounded.
"""

from __future__ import annotations

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
    events: Sequence[Event], fails: Callable[[list[Event]], bool], max_tries: int = 200
) -> list[Event]:
    """A shortest-found subsequence of `events` for which `fails` is still True.

    `fails` replays a candidate from an empty cluster and says whether it still fails the same
    way; it is called at most `max_tries` times and never on a sequence the model rejects.
    """
    best = list(events)
    tries = 0
    chunk = max(len(best) // 2, 1)
    while chunk >= 1 and tries < max_tries:
        progressed = False
        start = 0
        while start < len(best) and tries < max_tries:
            candidate = best[:start] + best[start + chunk :]
            if candidate and is_valid(candidate):
                tries += 1
                if fails(candidate):
                    best = candidate
                    progressed = True
                    continue
            start += chunk
        if not progressed:
            chunk //= 2
    return best
