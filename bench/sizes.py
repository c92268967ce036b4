"""How big each benchmark runs: the `full` profile (the figures a report publishes) or `quick`
(seconds in all, to check that every benchmark runs and where its figures go).

HARNESS_BENCH_PROFILE picks the profile (default `full`); HARNESS_BENCH_<NAME> overrides one
size whatever the profile. Read once, at import, so every benchmark of a session sees the same.
A value that cannot be used stops the session with one line naming the variable and the fix.
"""

from __future__ import annotations

import os

import pytest

PROFILES = ("full", "quick")
PROFILE = os.environ.get("HARNESS_BENCH_PROFILE", "full")
if PROFILE not in PROFILES:
    raise pytest.UsageError(
        f"HARNESS_BENCH_PROFILE must be one of {', '.join(PROFILES)}, not {PROFILE!r}"
    )


def _given(name: str) -> str | None:
    return os.environ.get(f"HARNESS_BENCH_{name}") or None


def size(name: str, full: int, quick: int) -> int:
    """HARNESS_BENCH_`name` as a whole number of at least 1, else the profile's default."""
    text = _given(name)
    if text is None:
        return full if PROFILE == "full" else quick
    if not text.isdigit() or int(text) < 1:
        raise pytest.UsageError(f"HARNESS_BENCH_{name} must be a whole number >= 1, not {text!r}")
    return int(text)


def names(name: str, full: str, quick: str) -> list[str]:
    """HARNESS_BENCH_`name` as a comma-separated list, else the profile's default."""
    text = _given(name) or (full if PROFILE == "full" else quick)
    return [item for item in text.split(",") if item]


def counts(name: str, full: str, quick: str) -> list[int]:
    """HARNESS_BENCH_`name` as a comma-separated list of whole numbers >= 1 (e.g. `1,2,3`),
    else the profile's default."""
    items = names(name, full, quick)
    if not items or not all(item.isdigit() and int(item) >= 1 for item in items):
        raise pytest.UsageError(
            f"HARNESS_BENCH_{name} must be whole numbers >= 1 separated by commas (e.g. 1,2,3),"
            f" not {','.join(items)!r}"
        )
    return [int(item) for item in items]
