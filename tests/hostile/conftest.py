"""The hostile-input tests count what they tried, and say so.

Each fuzz test runs its Hypothesis search inside the test function and counts the inputs it
actually tried with `inputs` (Hypothesis's `max_examples` is only an upper bound). At the end the
test asserts its minimum, the count is printed in pytest's summary ("hostile inputs tried") and
written, with every other test's, to `hostile-inputs.json` in pytest's temporary base directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings

COUNTS: dict[str, int] = {}
FIGURE = "hostile-inputs.json"


def sizes(default: int, sweep: int) -> pytest.MarkDecorator:
    """Run a fuzz test with `default` inputs, and again with `sweep` inputs marked `sweep` (left
    out of the default run, `tox -e unit`; `pytest tests/hostile -m sweep` runs them); the test
    takes the count as its `examples` argument."""
    return pytest.mark.parametrize(
        "examples",
        [default, pytest.param(sweep, marks=pytest.mark.sweep)],
        ids=["default", "sweep"],
    )


def fuzz_settings(examples: int, **overrides: object) -> settings:
    """Settings of a fuzz search: `examples` inputs, no deadline (some start processes), no
    example database (nothing written into the checkout), no health check about slow or
    filtered data (the inputs are deliberately odd)."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        **overrides,  # type: ignore[arg-type]
    )


@dataclass
class Inputs:
    """How many hostile inputs one test tried, by kind (`tried(kind)`)."""

    test: str
    by_kind: dict[str, int] = field(default_factory=dict)

    def tried(self, kind: str = "input") -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def at_least(self, minimum: int) -> None:
        """Fail unless at least `minimum` inputs were tried (a search that ran dry proves less
        than it claims)."""
        assert self.total >= minimum, f"{self.test} tried only {self.total} inputs"


@pytest.fixture
def inputs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Inputs]:
    tally = Inputs(request.node.nodeid)
    yield tally
    for kind, count in tally.by_kind.items():
        COUNTS[f"{tally.test} [{kind}]"] = count
    figure = tmp_path_factory.getbasetemp() / FIGURE
    figure.write_text(json.dumps(COUNTS, indent=1, sort_keys=True) + "\n")
    print(f"\n{tally.test}: {tally.total} hostile inputs tried {tally.by_kind}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not COUNTS:
        return
    terminalreporter.section("hostile inputs tried")
    for name, count in sorted(COUNTS.items()):
        terminalreporter.write_line(f"{count:>7}  {name}")
