"""The conformance suite: one test per property, each a Hypothesis search against the target.

A failure prints the shrunk counterexample and the command that replays it; the sequence and
its history are saved under reports/failures/.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.checks import PROPERTIES
from harness.conformance import Status, options_for, run_property


@pytest.mark.parametrize("prop", list(PROPERTIES))
def test_property_holds(prop: str, target: Any, suite_settings: dict[str, Any]) -> None:
    options = options_for(
        target,
        seed=suite_settings["seed"],
        examples=suite_settings["examples"],
        steps=suite_settings["steps"],
        deadline_s=suite_settings["deadline"],
    )
    result = run_property(target, prop, options)
    if result.status == Status.SKIPPED:
        pytest.skip(f"{prop}: {result.message}")
    if result.status == Status.FAILED:
        steps = "\n".join(f"  {i}. {e}" for i, e in enumerate(result.counterexample, 1))
        pytest.fail(
            f"{prop} violated on {target.name} (seed {suite_settings['seed']}): {result.message}\n"
            f"shrunk counterexample ({len(result.counterexample)} events):\n{steps}\n"
            f"replay: harness replay {result.failure_file} --target {suite_settings['target']}",
            pytrace=False,
        )
    assert result.examples > 0 and result.events > 0
