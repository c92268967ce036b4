"""A fixed sequence replayed on a freshly opened local target, as its history: what the tests
of one nemesis or one disclosed mutant on real packets share (test_stale_snapshot.py,
test_unobserved.py)."""

from __future__ import annotations

from typing import Any

from harness import registry
from harness.events import Event
from harness.runner import RunConfig, replay
from harness.targets.local import LocalTarget

CONFIG = RunConfig(deadline_s=LocalTarget.default_deadline_s)


def replayed(spec: str, prefix: str, events: list[Event]) -> list[dict[str, Any]]:
    """The history of `events` replayed on target `spec` (opened with `prefix`, then closed)."""
    target = registry.make_target(spec, registry.TargetOptions(prefix=prefix))
    target.open()
    try:
        return list(replay(target, events, CONFIG).history)
    finally:
        target.close()


def failures(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A history record's failing verdicts (a step that passed records only their count)."""
    verdicts = record["verdicts"]
    return [] if isinstance(verdicts, int) else list(verdicts)
