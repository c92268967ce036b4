"""Search profiles and budgets: how big a run is, stated once.

A run's search ends when its example count or its wall-time budget is spent, whichever comes
first (`Limits`). Profiles name the usual sizes, separately for simulated time (the model, where
an example costs microseconds of real time) and for real targets (a local or kube cluster, where
every step sends real connections):

| profile | model (simulated) | real targets | what for |
|---|---|---|---|
| quick | 400 examples x 20 steps | 60 examples x 12 steps, at most 3 min | CI, a first look |
| default | 2,000 x 30 | 150 x 15, at most 5 min | a candidate proxy's check |
| deep | 20,000 x 40 | 3,000 x 20, at most 2 h, and the balancing probe | nightly |

`coverage_goal` is the number of checks of every coverage feature the search aims for
(`harness.swarm`); `balance_probe` adds the fairness probe sized to detect a 2% deviation of one
endpoint's share at every n from 2 to 10 (`harness.balance`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Limits:
    """When a search stops: after `examples` examples of `steps` events, or once `budget_s`
    seconds of wall time have passed (None: no time limit)."""

    examples: int
    steps: int
    budget_s: float | None = None


@dataclass(frozen=True)
class Profile:
    """A named run size (see the module docstring)."""

    name: str
    simulated: Limits
    real: Limits
    coverage_goal_simulated: int
    coverage_goal_real: int
    balance_probe: bool = False

    def limits(self, simulated: bool) -> Limits:
        return self.simulated if simulated else self.real

    def coverage_goal(self, simulated: bool) -> int:
        return self.coverage_goal_simulated if simulated else self.coverage_goal_real


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", Limits(400, 20), Limits(60, 12, 180.0), 50, 3),
    "default": Profile("default", Limits(2000, 30), Limits(150, 15, 300.0), 100, 5),
    "deep": Profile("deep", Limits(20000, 40), Limits(3000, 20, 7200.0), 500, 50, True),
}

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `90`, `90s`, `5m`, `1h30m` or `2.5m`; ValueError naming the
    accepted forms for anything else (or for zero)."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; use e.g. 90s, 5m or 1h30m")
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(f"{text!r} is not a positive duration; use e.g. 90s, 5m or 1h30m")
    if total == math.inf:
        raise ValueError(f"{text!r} is too long to be a duration; use e.g. 90s, 5m or 1h30m")
    return total


def profile_named(name: str) -> Profile:
    """The profile called `name`; ValueError naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; use one of {', '.join(PROFILES)}") from None
