"""Running the conformance suite: one search, every property, each failure shrunk and confirmed.

1. **Search** (`harness.search`): Hypothesis draws sequences; every step is checked by every
   property; the first sequence that violates each selected property is a finding.
2. **Shrink** (`harness.shrink`): each finding is shrunk by events for its own property ("this
   property still fails"), every candidate replayed from a reset (a fresh proxy, an empty
   cluster). A candidate that also fails another property not found yet becomes that property's
   finding.
3. **Confirm**: the shrunk sequence is replayed on fresh targets (`confirmations` times, the
   target closed and opened anew each time: new namespaces, a new proxy, new connections to a
   cluster) and is reported as flaky unless every replay fails the property again.
4. **Save** (`harness.failures`): the sequence, its verdicts and history, and the run's options,
   so that `harness replay FILE` reproduces it.

The search goes on after a finding, for the properties that still hold, until its examples or
its time budget are spent. Hypothesis's own shrinker is off: it minimises the choices behind a
sequence, not its length, and on this suite it took 10-40 times as many replays for
counterexamples no shorter, which matters when every replay drives a real data plane.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness import externalclients, known_issues, nodeclients, podclients
from harness.balance import balance_sequences
from harness.checks import (
    PROPERTIES,
    PROXY_CONTRACT,
    connections,
    external,
    nodes,
    rules,
    sources,
)
from harness.checks.confidence import AlarmBudget
from harness.checks.verdict import failed
from harness.clock import SimulatedClock
from harness.coverage import UNOBSERVED_FEATURE, WHILE_DOWN_FEATURE, Coverage
from harness.errors import HarnessError
from harness.events import Event
from harness.failures import FailureRecord, RunContext, save_failure
from harness.features import NOT_SUPPORTED, unsupported_properties, unsupported_states
from harness.history import History
from harness.known_issues import Match
from harness.longlived import FEATURE as LONG_LIVED_FEATURE
from harness.longlived import UDP_FEATURE as UDP_FLOW_FEATURE
from harness.model.objects import NODES
from harness.profiles import DEFAULT_PROFILE, PROFILES, Limits, Profile
from harness.runner import RunConfig, Runner
from harness.search import Finding, Search, SearchStats
from harness.shrink import shrink_events
from harness.strategies import EventSpace, space_nodes
from harness.targets.base import (
    ConnectionHolder,
    Target,
    out_of_window_unsupported,
    reads_rules,
    restart_unsupported,
    sends_from_pods,
    stale_unsupported,
    target_features,
    target_proxy_metrics,
    target_versions,
    unobserved_unsupported,
)
from harness.udp_support import generates_udp

MAX_SERVICES_PER_STEP = 3
STATISTICAL_CHECKS_PER_SERVICE = 2  # fairness and affinity expiry


class Status(StrEnum):
    """A property's verdict. `error`: not judged, because the run ended early (an environment
    or harness error, or an interrupt); it is never a verdict on the target."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"


@dataclass
class PropertyResult:
    """The verdict on one property: passed, skipped (with why), or failed with its shrunk
    counterexample, where it was saved, and how often it reproduced on fresh targets."""

    name: str
    status: Status
    message: str = ""
    counterexample: list[Event] = field(default_factory=list)
    verdicts: Any = None
    history: History | None = None
    failure_file: Path | None = None
    flaky: bool = False
    reproduced: str = ""
    found_after_s: float | None = None
    known_issues: list[Match] = field(default_factory=list)


@dataclass(frozen=True)
class SuiteOptions:
    """What to run: properties, search limits, seed, event space, runner settings, where
    failures go, and how hard to shrink and confirm."""

    properties: Sequence[str] = tuple(PROPERTIES)
    limits: Limits = field(default_factory=lambda: PROFILES[DEFAULT_PROFILE].simulated)
    coverage_goal: int = 50
    seed: int = 0
    space: EventSpace = field(default_factory=EventSpace)
    config: RunConfig = field(default_factory=RunConfig)
    failures_dir: Path = Path("reports/failures")
    shrink_tries: int = 200
    shrink_seconds: float = 120.0
    confirmations: int = 2
    stop_at_first: bool = False
    run: RunContext = field(default_factory=lambda: RunContext("model", 0))
    fixed: tuple[tuple[Event, ...], ...] = ()
    profile_sized: bool = True  # the search has its profile's sizes (the coverage goal applies)


@dataclass
class SuiteResult:
    """One run: a verdict per property, what the search explored, its latencies, and what ended
    it early if anything did (`error`: an environment or harness error's one line;
    `interrupted`: SIGINT or SIGTERM). Findings made before an early end are kept."""

    results: list[PropertyResult]
    stats: SearchStats
    options: SuiteOptions
    target_name: str = ""
    error: str | None = None
    interrupted: bool = False
    uncheckable: frozenset[str] = frozenset()
    versions: dict[str, str] = field(default_factory=dict)
    proxy_metrics: dict[str, Any] | None = None  # the proxy's own sync metrics, if it has any

    @property
    def failed(self) -> list[PropertyResult]:
        return [r for r in self.results if r.status == Status.FAILED]

    @property
    def coverage(self) -> Coverage:
        return self.stats.coverage


def select_properties(focus: str | None, skip: str | None) -> list[str]:
    """Property names matching the `focus` regex and not the `skip` regex (Ginkgo-style)."""
    chosen = [p for p in PROPERTIES if focus is None or re.search(focus, p)]
    return [p for p in chosen if skip is None or not re.search(skip, p)]


def uncheckable_features(target: Target, supported: frozenset[str] | None = None) -> frozenset[str]:
    """Coverage features `target` cannot check: affinity expiry is judged over many addresses
    of one client, which a target offering one (a client pod of a real cluster) lacks; a proxy
    restart needs a target that can restart its proxy, held connections one that holds them,
    source IP and hairpin one that sends from pods (`podclients`), held UDP flows one for which
    UDP Services are generated (`harness.udp_support`); the states only conformance features
    outside `supported` show are never drawn (`harness.features.unsupported_states`)."""
    unreachable = set(unsupported_states(supported) if supported is not None else ())
    if int(getattr(target, "max_sources", 1)) < 2:
        unreachable.add("affinity-idle-past-timeout")
    if restart_unsupported(target) is not None:
        unreachable.add("proxy-restarted")
    if stale_unsupported(target) is not None:
        unreachable.add("stale-snapshot")
    if unobserved_unsupported(target) is not None:
        unreachable.add(UNOBSERVED_FEATURE)
    if restart_unsupported(target) is not None or unobserved_unsupported(target) is not None:
        unreachable.add(WHILE_DOWN_FEATURE)  # drawn only where both are (`strategies`)
    if out_of_window_unsupported(target) is not None or not isinstance(target, ConnectionHolder):
        unreachable.add("out-of-window")
    if not isinstance(target, ConnectionHolder):
        unreachable.add(LONG_LIVED_FEATURE)
    if not isinstance(target, ConnectionHolder) or not generates_udp(target):
        unreachable.add(UDP_FLOW_FEATURE)  # no UDP Service is generated for it
    return (
        frozenset(unreachable)
        | podclients.uncheckable(target)
        | nodeclients.uncheckable(target)
        | externalclients.uncheckable(target)
    )


def applicable(prop: str, target: Target, supported: frozenset[str] | None = None) -> str | None:
    """Why `prop` cannot run on `target`, or None if it can: also when it judges only
    conformance features outside `supported` (what the implementation declares)."""
    if supported is not None and prop in unsupported_properties(supported):
        return NOT_SUPPORTED
    if prop == rules.PROPERTY and not reads_rules(target):
        why = getattr(target, "rules_unsupported", None)  # a target may say why (kube)
        return str(why) if why else "the target cannot show its programmed rules"
    if prop == PROXY_CONTRACT and not getattr(target, "runs_proxy", False):
        return "the target runs no proxy process of the harness's"
    if prop == connections.PROPERTY and not isinstance(target, ConnectionHolder):
        return "the target holds no long-lived connections across steps (ConnectionHolder)"
    if prop in (sources.SOURCE_IP, sources.HAIRPIN) and not sends_from_pods(target):
        return "the target cannot send from inside a pod (sends_from_pods)"
    if prop == nodes.PROPERTY:
        return nodeclients.unavailable(target)
    if prop == external.PROPERTY:
        return externalclients.unavailable(target)
    return None


OnVerdict = Callable[[PropertyResult], None]


class _Findings:
    """Shrinks, confirms and saves findings as the search hands them over (module docstring)."""

    def __init__(
        self,
        runner: Runner,
        options: SuiteOptions,
        on_verdict: OnVerdict | None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.runner = runner
        self.options = options
        self.on_verdict = on_verdict
        self.on_status = on_status
        self.search: Search | None = None
        self.results: dict[str, PropertyResult] = {}
        self.started_s = time.monotonic()
        self._pending: list[Finding] = []
        self._versions: dict[str, str] | None = None

    @property
    def versions(self) -> dict[str, str]:
        """The target's versions, asked once (`target_versions`)."""
        if self._versions is None:
            self._versions = target_versions(self.runner.target)
        return self._versions

    def handle(self, finding: Finding) -> None:
        self._pending.append(finding)
        while self._pending:
            self._record(self._pending.pop(0))

    def _record(self, finding: Finding) -> None:
        prop = finding.property
        shrunk = shrink_events(
            list(finding.events),
            lambda candidate: self._fails(candidate, prop),
            max_tries=self.options.shrink_tries,
            max_seconds=self.options.shrink_seconds,
        )
        # a fresh runner, as the confirmations and a replay from the file: the search's runner
        # no longer waits for mismatches it saw missed (`Runner.reset`), so its samples differ
        final = replay_for(Runner(self.runner.target, self.options.config), shrunk, prop)
        if final is None:  # did not fail on replay: keep what the search saw
            shrunk, message, verdicts = list(finding.events), finding.verdict.message, None
            history: History | None = None
        else:
            message, verdicts, history = final[0].message, [final[0].to_json()], final[1]
        reproduced = self._confirm(shrunk, prop)
        verdicts = verdicts or [finding.verdict.to_json()]
        matches = known_issues.match(prop, shrunk, verdicts, self.versions)
        if matches:  # history for the failure; it stays a failure
            message += "; " + "; ".join(m.text for m in matches)
        result = PropertyResult(
            prop,
            Status.FAILED,
            message=message,
            counterexample=shrunk,
            verdicts=verdicts,
            history=history,
            flaky=final is None or not reproduced.startswith(f"{self.options.confirmations}/"),
            reproduced=reproduced,
            found_after_s=time.monotonic() - self.started_s,
            known_issues=matches,
        )
        result.failure_file = save_failure(
            FailureRecord(
                prop,
                result.message,
                shrunk,
                replace(self.options.run, alarm_budget=self.options.config.budget.to_json()),
                result.verdicts,
                history.to_json() if history else [],
                result.flaky,
                reproduced,
            ),
            self.options.failures_dir,
            self.runner.target.name,
        )
        self.results[prop] = result
        if result.flaky and self.options.stop_at_first and self.search is not None:
            self.search.reopen(prop)  # reported as found; the search goes on for a confirmed one
        if self.on_verdict is not None:
            self.on_verdict(result)

    def _fails(self, candidate: list[Event], prop: str) -> int | None:
        """Replay `candidate` from a reset; the length of the prefix that failed `prop` (None if
        it held). Other selected properties it fails become findings of their own."""
        if self.on_status is not None:
            self.on_status(f"shrinking {prop}'s counterexample: trying {len(candidate)} events")
        self.runner.reset()
        for index, event in enumerate(candidate, 1):
            step = self.runner.step(event)
            failing = {v.property: v for v in step.failures()}
            for other, verdict in failing.items():
                self._discovered(other, verdict, candidate[:index])
            if prop in failing:
                return index
            if self.runner.broken is not None:
                return None
        return len(candidate) if fails_to_restart(self.runner, prop) else None

    def _discovered(self, prop: str, verdict: Any, events: list[Event]) -> None:
        if self.search is None or prop not in self.search.properties or prop in self.search.found:
            return
        self.search.settle(prop)
        self._pending.append(Finding(prop, tuple(events), verdict))

    def _confirm(self, events: list[Event], prop: str) -> str:
        """Replay on the target closed and opened anew, `confirmations` times; "k/n"
        reproduced. The target is open again afterwards."""
        if self.on_status is not None:
            self.on_status(f"confirming {prop}'s counterexample ({len(events)} events)")
        reproduced = 0
        target = self.runner.target
        for _ in range(self.options.confirmations):
            target.close()
            target.open()
            if replay_for(Runner(target, self.options.config), events, prop) is not None:
                reproduced += 1
        return f"{reproduced}/{self.options.confirmations}"


def replay_for(runner: Runner, events: Sequence[Event], prop: str) -> tuple[Any, History] | None:
    """Replay `events` from a reset until `prop` fails: its failing verdict and the history,
    or None if it held throughout."""
    runner.reset()
    for event in events:
        step = runner.step(event)
        failing = [v for v in step.failures() if v.property == prop]
        if failing:
            return failing[0], runner.history
        if runner.broken is not None:
            return None
    history = runner.history
    if fails_to_restart(runner, prop):
        assert runner.reset_failure is not None
        failure = runner.reset_failure
        return failed(PROXY_CONTRACT, str(failure), **failure.evidence), history
    return None


def fails_to_restart(runner: Runner, prop: str) -> bool:
    """For `proxy-contract` only: whether a fresh proxy fails to start after what the runner
    just ran (the proxy left something behind that breaks its successor)."""
    if prop != PROXY_CONTRACT or runner.broken is not None:
        return False
    runner.reset()
    return runner.reset_failure is not None


def run_suite(
    target: Target,
    options: SuiteOptions,
    on_verdict: OnVerdict | None = None,
    on_progress: Callable[[SearchStats, Limits], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> SuiteResult:
    """Search an opened target for every selected property; the target is left open (it is
    closed and reopened for each confirmation), and the caller closes it.

    An environment or harness error (`HarnessError`) or an interrupt during the search ends it:
    the findings saved so far are kept, every other property is `error` (not judged), and the
    result says why (`SuiteResult.error`, `SuiteResult.interrupted`), so that the caller can
    report it before exiting."""
    error: str | None = None
    interrupted = False
    supported = target_features(target)[0]
    skipped = {p: why for p in options.properties if (why := applicable(p, target, supported))}
    searched = [p for p in options.properties if p not in skipped]
    runner = Runner(target, options.config)
    findings = _Findings(runner, options, on_verdict, on_status)
    uncheckable = uncheckable_features(target, supported)
    search = Search(
        runner,
        searched,
        options.space.for_features(supported),
        options.limits,
        options.coverage_goal,
        findings.handle,
        on_progress,
        options.stop_at_first,
        options.fixed,
        uncheckable=uncheckable,
    )
    findings.search = search
    try:
        search.run(options.seed)
    except HarnessError as problem:
        error = str(problem)
    except KeyboardInterrupt:
        interrupted = True
    unjudged = "not judged: " + ("the run was interrupted" if interrupted else f"{error}")
    results = []
    for prop in options.properties:
        if prop in skipped:
            results.append(PropertyResult(prop, Status.SKIPPED, message=skipped[prop]))
        elif prop in findings.results:
            results.append(findings.results[prop])
        elif error is not None or interrupted:
            results.append(PropertyResult(prop, Status.ERROR, message=unjudged))
        else:
            results.append(PropertyResult(prop, Status.PASSED))
    return SuiteResult(
        results,
        search.stats,
        options,
        target.name,
        error,
        interrupted,
        uncheckable,
        findings.versions,
    )


def run_target(
    target: Target,
    options: SuiteOptions,
    on_verdict: OnVerdict | None = None,
    on_progress: Callable[[SearchStats, Limits], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> SuiteResult:
    """`run_suite` on `target` opened for it and closed afterwards, also after an error."""
    target.open()
    try:
        result = run_suite(target, options, on_verdict, on_progress, on_status)
        result.proxy_metrics = target_proxy_metrics(target)
        return result
    finally:
        target.close()


def options_for(
    target: Target,
    *,
    seed: int,
    profile: Profile | None = None,
    examples: int | None = None,
    steps: int | None = None,
    budget_s: float | None = None,
    deadline_s: float | None = None,
    properties: Sequence[str] = tuple(PROPERTIES),
    failures_dir: Path = Path("reports/failures"),
    run: RunContext | None = None,
) -> SuiteOptions:
    """Suite options for `target` from a profile (default: `default`), with any of its sizes
    overridden. Simulated targets (the model) get the profile's simulated sizes; real ones its
    real sizes, and a target may name its own `default_deadline_s`. A profile with the
    balancing probe runs its sequences first (`harness.balance`). The false-alarm budget is
    shared by every statistical check the run may make."""
    simulated = isinstance(target.clock, SimulatedClock)
    chosen = profile or PROFILES[DEFAULT_PROFILE]
    base = chosen.limits(simulated)
    limits = Limits(
        examples if examples is not None else base.examples,
        steps if steps is not None else base.steps,
        budget_s if budget_s is not None else (base.budget_s if examples is None else None),
    )
    deadline = deadline_s if deadline_s is not None else getattr(target, "default_deadline_s", 30.0)
    max_checks = (
        limits.examples * limits.steps * MAX_SERVICES_PER_STEP * STATISTICAL_CHECKS_PER_SERVICE
    )
    return SuiteOptions(
        properties=tuple(properties),
        limits=limits,
        coverage_goal=chosen.coverage_goal(simulated),
        seed=seed,
        space=EventSpace(
            simulated=simulated,
            restarts_proxy=restart_unsupported(target) is None,
            shows_stale=stale_unsupported(target) is None,
            hides_updates=unobserved_unsupported(target) is None,
            sends_out_of_window=out_of_window_unsupported(target) is None,
            cuts_api=getattr(target, "api_cut_unsupported", "") is None,  # the kube target's
            udp=bool(getattr(target, "sends_udp", False)),  # declared or not: `for_features`
            sctp=bool(getattr(target, "sends_sctp", False)),  # as `udp`
            nodes=space_nodes(getattr(target, "accepted_nodes", NODES)),
        ),
        config=RunConfig(deadline_s=float(deadline), budget=AlarmBudget(max_checks=max_checks)),
        failures_dir=failures_dir,
        shrink_tries=200 if simulated else 60,
        shrink_seconds=120.0,
        run=run or RunContext(target.name, seed),
        fixed=tuple(map(tuple, balance_sequences())) if chosen.balance_probe else (),
        profile_sized=examples is None and steps is None and budget_s is None,
    )
