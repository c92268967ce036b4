"""One search for every property: Hypothesis draws event sequences, the runner checks them all.

Jepsen's split around one history: the generator (Hypothesis with the swarm, `harness.swarm`)
proposes each example's events one at a time against the model; the runner applies them to the
target and checks every property at every step; the search records, for every selected
property, the first sequence that violated it (a `Finding`) and hands it to `on_finding` once
the example is over, then goes on looking for the properties that still hold.

Hypothesis is the generator only: nothing here ever fails a Hypothesis test, so its shrinker
never runs (findings are shrunk by events afterwards, `harness.shrink`). `target()` steers its
targeted phase toward examples rich in coverage features, and the swarm's aims toward the
features the run has checked least.

The search runs in rounds, each one Hypothesis run of a few (`ROUND_EXAMPLES`) examples with its
own seed (derived from the run's) and the aims fixed from the coverage at the round's start:
Hypothesis requires that the same choices always lead to the same draws, so nothing outside the
choices may change what is drawn within a round. For the same reason an example draws all of its
events first, from the model they lead to, before any is applied; a sequence the search already
ran is skipped, so every example it runs is a distinct sequence.

Every example starts from `runner.reset()`: a fresh proxy and an empty cluster, so a finding's
sequence describes everything that led to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings, target
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from harness.checks import PROXY_CONTRACT
from harness.checks.verdict import Verdict, failed
from harness.coverage import Coverage
from harness.errors import HarnessError
from harness.events import CreateService, Event, Scale
from harness.model.objects import labels_of
from harness.model.state import ClusterState
from harness.profiles import Limits
from harness.recipes import draw_recipe
from harness.runner import Runner, StepResult
from harness.strategies import GENERATORS, EventSpace, draw_event
from harness.swarm import RECIPE_ODDS, Swarm, draw_odds, draw_swarm

PRELUDE_REPLICAS = (3, 5, 1, 0, 7)
ROUND_EXAMPLES = {True: 20, False: 1}
"""Examples per round, on simulated time and on real targets (whose examples cost seconds, so
the aims are brought up to date after every example)."""


@dataclass(frozen=True)
class Finding:
    """The first sequence seen to violate `property`: every event up to and including the
    failing step, and the failing verdict."""

    property: str
    events: tuple[Event, ...]
    verdict: Verdict


@dataclass
class SearchStats:
    """What a search explored: examples, events, distinct sequences, coverage, and why it
    stopped (`examples`, `budget`, `all found`)."""

    examples: int = 0
    events: int = 0
    sequences: set[str] = field(default_factory=set)
    coverage: Coverage = field(default_factory=Coverage)
    latencies_s: list[float] = field(default_factory=list)
    started_s: float = field(default_factory=time.monotonic)
    stopped: str = ""

    @property
    def distinct_sequences(self) -> int:
        return len(self.sequences)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_s


OnFinding = Callable[[Finding], None]
OnProgress = Callable[[SearchStats, Limits], None]


class Search:
    """One search over a runner's target for every property in `properties`.

    Promises: `run` returns after `limits.examples` examples, once `limits.budget_s` seconds
    have passed (checked before every step), or once every property has a finding (the first
    one, with `stop_at_first`, and then only that one is handed over; a property its handler
    `reopen`s is looked for again); each finding is handed
    to `on_finding` after its example ends (a handler may replay on the same runner); Ctrl-C
    propagates as KeyboardInterrupt. It never changes the target except through the runner.
    It never aims at a coverage feature in `uncheckable` (the target cannot show it, or the
    implementation does not declare the conformance feature behind it).
    """

    def __init__(
        self,
        runner: Runner,
        properties: Collection[str],
        space: EventSpace,
        limits: Limits,
        coverage_goal: int,
        on_finding: OnFinding,
        on_progress: OnProgress | None = None,
        stop_at_first: bool = False,
        fixed: Sequence[Sequence[Event]] = (),
        *,
        uncheckable: Collection[str] = (),
    ) -> None:
        self.runner = runner
        self.properties = frozenset(properties)
        self.space = space
        self.limits = limits
        self.coverage_goal = coverage_goal
        self.on_finding = on_finding
        self.on_progress = on_progress
        self.stop_at_first = stop_at_first
        self.fixed = [list(events) for events in fixed]
        self.uncheckable = frozenset(uncheckable)
        self.found: set[str] = set()
        self.stats = SearchStats()
        self._error: HarnessError | None = None
        self._previous: list[Event] = []

    def settle(self, prop: str) -> None:
        """Stop looking for `prop` (it was found outside the search, e.g. while shrinking)."""
        self.found.add(prop)

    def reopen(self, prop: str) -> None:
        """Look for `prop` again: its finding did not reproduce on a fresh target, and with
        `stop_at_first` only a finding that reproduces ends the search (a loaded machine's
        chance alarm must not stand for a catch)."""
        self.found.discard(prop)

    def run(self, seed_value: int) -> SearchStats:
        """Run the `fixed` sequences first, then search in rounds until the examples, the budget
        or the properties run out. An environment or harness error (`HarnessError`) ends the
        search and is raised again here, outside Hypothesis, once the round is over; the stats
        so far are kept in `stats`."""
        self.stats = SearchStats()
        self._error = None
        for events in self.fixed:
            if self._over():
                break
            self._run_example(events)
            if self._error is not None:
                raise self._error
        round_number = 0
        while not self._over():
            before = self.stats.examples
            self._round(seed_value * 1_000_003 + round_number)
            round_number += 1
            if self._error is not None:
                self.stats.stopped = "error"
                raise self._error
            if self.stats.examples == before and not self._over():
                self.stats.stopped = "no new sequence"
                break
        return self.stats

    def _round(self, round_seed: int) -> None:
        """One Hypothesis run of twice its share of examples; it runs at most its share of new
        sequences, and none once the search is over (the others are drawn and dropped: a test
        that stopped drawing early would break Hypothesis's rule that the same choices draw the
        same)."""
        short = tuple(
            f for f in self.stats.coverage.short_of(self.coverage_goal) if f not in self.uncheckable
        )
        share = ROUND_EXAMPLES[self.space.simulated]
        done = self.stats.examples + share
        round_settings = settings(
            max_examples=2 * share,
            phases=(Phase.generate, Phase.target),
            deadline=None,
            database=None,
            derandomize=False,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
            print_blob=False,
        )

        @seed(round_seed)
        @round_settings
        @given(st.data())
        def explore(data: st.DataObject) -> None:
            self._example(data, short, done)

        explore()

    # -- one example --------------------------------------------------------------------------
    def _example(self, data: st.DataObject, short: tuple[str, ...], done: int) -> None:
        """Draw a whole example first (the draws depend on the choices only); run it unless the
        search already ran the same sequence, ran this round's share, or is over."""
        swarm = draw_swarm(data, self.space, short)
        events = list(self._events(data, swarm))
        key = json.dumps([e.to_json() for e in events])
        if key in self.stats.sequences or self.stats.examples >= done or self._over():
            return
        if self._error is not None:
            return
        try:
            self._run_example(events)
        except HarnessError as error:  # never a Hypothesis failure: `run` raises it
            self._error = self._error or error

    def _run_example(self, events: list[Event]) -> None:
        """Run one example from a reset; record what it explored; hand over its findings. A
        fresh proxy that fails to start after the previous example is that example's finding
        for `proxy-contract` (replaying it and starting afresh reproduces it)."""
        self.stats.sequences.add(json.dumps([e.to_json() for e in events]))
        findings: list[Finding] = []
        self.runner.reset()
        failure = self.runner.reset_failure
        if failure is not None and PROXY_CONTRACT in self.properties - self.found:
            self.found.add(PROXY_CONTRACT)
            message = f"{failure} (starting a fresh proxy after the example)"
            verdict = failed(PROXY_CONTRACT, message, **failure.evidence)
            findings.append(Finding(PROXY_CONTRACT, tuple(self._previous), verdict))
        self._previous = events
        example = Coverage()
        for event in events:
            if self.runner.broken is not None or self._over():
                break
            result = self.runner.step(event)
            self.stats.events += 1
            example.add(result.reached, result.checked)
            findings += self._findings(result)
            self._report()
        self.stats.examples += 1
        self.stats.coverage.merge(example)
        self.stats.latencies_s += self.runner.history.latencies_s()
        if currently_in_test_context():  # fixed sequences run outside Hypothesis
            for name, count in example.checked.items():
                target(float(count), label=name)
        for finding in findings[:1] if self.stop_at_first else findings:
            self.on_finding(finding)
        self._report()

    def _events(self, data: st.DataObject, swarm: Swarm) -> Iterator[Event]:
        """The example's events, drawn one at a time against the model they lead to: a prelude
        (a Service selecting one group, and that group scaled), then events of the enabled
        kinds, and in an aimed example, turns of its aim's recipe (`harness.recipes`). Pure:
        the draws depend on the choices only."""
        model = ClusterState()
        created = data.draw(GENERATORS["create_service"].strategy(model, swarm.space))
        assert isinstance(created, CreateService)
        group = dict(created.selector)["app"]
        replicas = data.draw(st.sampled_from(PRELUDE_REPLICAS), label="prelude replicas")
        node = data.draw(st.sampled_from(swarm.space.nodes), label="prelude node")
        prelude: list[Event] = [
            replace(created, selector=labels_of({"app": group})),
            Scale(group, replicas, node),
        ]
        for event in prelude:
            model = event.apply(model)
            yield event
        left = self.limits.steps - len(prelude)
        while left > 0:
            batch: list[Event] = []
            if swarm.aim is not None and draw_odds(data, RECIPE_ODDS, "follow the recipe"):
                batch = draw_recipe(data, swarm.aim, model, swarm.space)
            if not batch:
                drawn = draw_event(data, model, swarm.space, swarm.kinds)
                if drawn is None:
                    return
                batch = [drawn]
            for event in batch[:left]:
                model = event.apply(model)
                yield event
            left -= len(batch[:left])

    def _findings(self, result: StepResult) -> list[Finding]:
        found = []
        for verdict in result.failures(self.properties - self.found):
            if verdict.property in self.found:
                continue
            self.found.add(verdict.property)
            found.append(Finding(verdict.property, tuple(self.runner.events), verdict))
        return found

    # -- stopping -----------------------------------------------------------------------------
    def _over(self) -> bool:
        """Whether the search is done (checked between examples and before every step)."""
        if self.stats.examples >= self.limits.examples:
            self.stats.stopped = "examples"
            return True
        budget = self.limits.budget_s
        if budget is not None and self.stats.elapsed_s >= budget:
            self.stats.stopped = "budget"
            return True
        if self.properties and self.found >= self.properties:
            self.stats.stopped = "all found"
            return True
        if self.stop_at_first and self.found:
            self.stats.stopped = "first found"
            return True
        return False

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stats, self.limits)
