"""The conformance suite: one test per property, each reading its verdict from the session's
one search (properties/conftest.py).

A failure prints the shrunk counterexample, how often it reproduced on fresh targets and the
command that replays it; the sequence and its history are saved under --failures-dir.
"""

from __future__ import annotations

import pytest

from harness.checks import PROPERTIES
from harness.conformance import Status, SuiteResult
from harness.failures import replay_command


@pytest.mark.parametrize("prop", list(PROPERTIES))
def test_property_holds(prop: str, suite: SuiteResult) -> None:
    result = next(r for r in suite.results if r.name == prop)
    if result.status == Status.SKIPPED:
        pytest.skip(f"{prop}: {result.message}")
    if result.status == Status.FAILED:
        assert result.failure_file is not None
        steps = "\n".join(f"  {i}. {e}" for i, e in enumerate(result.counterexample, 1))
        pytest.fail(
            f"{prop} violated on {suite.options.run.target} (seed {suite.options.seed}):"
            f" {result.message}\nshrunk counterexample ({len(result.counterexample)} events,"
            f" reproduced {result.reproduced}):\n{steps}\n"
            f"replay: {replay_command(result.failure_file, suite.options.run)}",
            pytrace=False,
        )
    assert result.status == Status.PASSED
    assert suite.stats.examples > 0 and suite.stats.events > 0


def test_the_search_checked_every_state_feature(suite: SuiteResult) -> None:
    """The search reached, and checked, every state where Service-proxy bugs live at least as
    often as its profile aims for (harness.coverage): a run that never met a state says
    nothing about it. Features the target cannot check (affinity expiry needs many client
    addresses) are reported, not required, and so is the goal of a run sized by hand
    (--examples, --steps, --budget)."""
    goal = suite.options.coverage_goal
    coverage = suite.coverage
    short = {f: coverage.checked[f] for f in coverage.short_of(goal) if f not in suite.uncheckable}
    if short and not suite.options.profile_sized:
        pytest.skip(f"a run sized by hand; checked fewer than {goal} times: {short}")
    assert not short, f"checked fewer than {goal} times: {short}"
