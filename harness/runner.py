"""The runner: apply each event to the model and the target, wait for convergence, observe, check.

One step, for every event (the flow in docs/architecture.md):

1. the model computes the state after the event (pure); a `Wait` first lets the time pass on the
   target's clock;
2. the target is told to make the change (`Target.apply`);
3. for every Service whose expected endpoints or settings changed, the runner polls the target
   (bounded by the deadline, on the target's clock) until its EndpointSlices and data plane match
   the model; that time is the programming latency;
4. it observes once more (slices, a batch of fresh connections, the programmed rules where the
   target can show them) and runs the checks;
5. it appends everything to the history, and raises `Violation` if a selected property failed.

A `Probe` event instead sends a large sample sized for the fairness test's power (or a
kept-alive sample when asked). When the fairness property is the one being checked, every step's
sample is sized that way too, so each change is also a balancing test.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.checks import PROPERTIES
from harness.checks.affinity import AffinityMemory, check_affinity
from harness.checks.endpoints import check_endpoints
from harness.checks.fairness import FairnessPolicy, balance_report, check_fairness
from harness.checks.latency import check_latency
from harness.checks.rules import check_exact_balance, reachability_mismatch
from harness.checks.traffic import check_availability, check_no_stale, check_reject
from harness.checks.verdict import Verdict
from harness.errors import Violation
from harness.events import Event, Probe, Wait
from harness.history import History
from harness.model.endpoints import derive_slices, unique_endpoints, usable_destinations
from harness.model.objects import PROXY_NODE, Affinity, Backend, EndpointSlice, Service
from harness.model.state import ClusterState
from harness.targets.base import RuleOracle, Target
from harness.traffic import CLIENTS, TrafficRequest, TrafficSample

PORT = "http"
EMPTY_BATCH = 3  # connections sent to a Service that must reject
KEEPALIVE_CONNECTIONS = 4
AFFINITY_CONFIRM_COUNT = 15  # test/e2e/network/service.go AffinityConfirmCount


@dataclass(frozen=True)
class RunConfig:
    """How strictly and how long the runner checks.

    `properties` are the ones whose failure raises (all others are still recorded);
    `deadline_s` bounds every convergence wait; `poll_s` is the first pause between polls (it
    doubles up to a fiftieth of the deadline, so a latency is known to within 2%);
    `request_timeout_s` bounds every request.
    """

    properties: frozenset[str] = frozenset(PROPERTIES)
    deadline_s: float = 30.0
    poll_s: float = 0.02
    request_timeout_s: float = 1.0
    fairness: FairnessPolicy = field(default_factory=FairnessPolicy)


@dataclass(frozen=True)
class Expectation:
    """What the model says about one Service right now."""

    service: Service | None
    slices: tuple[EndpointSlice, ...]
    usable: frozenset[Backend]


def expectation(state: ClusterState, name: str) -> Expectation:
    service = state.services.get(name)
    if service is None:
        return Expectation(None, (), frozenset())
    slices = derive_slices(state, name)
    destinations = usable_destinations(slices, service, PORT, PROXY_NODE)
    return Expectation(service, slices, frozenset(d.backend for d in destinations))


def changed_services(before: ClusterState, after: ClusterState) -> list[str]:
    """Services whose settings, endpoints or usable backends differ between two states."""
    names = sorted(set(before.services) | set(after.services))
    return [n for n in names if expectation(before, n) != expectation(after, n)]


def step_batch_size(usable: int) -> int:
    """Fresh connections per step: enough to meet a stale endpoint often, cheap to send."""
    return EMPTY_BATCH if usable == 0 else min(max(4 * usable, 8), 64)


class Runner:
    """Drives one target through events; holds the model, the history and the checker memory."""

    def __init__(
        self,
        target: Target,
        config: RunConfig | None = None,
        on_step: Callable[[Event], None] | None = None,
        on_reset: Callable[[Runner], None] | None = None,
    ) -> None:
        self.target = target
        self.config = config or RunConfig()
        self.clock = target.clock
        self.model = ClusterState()
        self.events: list[Event] = []
        self.history = History()
        self.memory = AffinityMemory()
        self.on_step = on_step
        self.on_reset = on_reset
        self.last_violation: Violation | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Return target, model and records to empty (between examples). `on_reset` sees the
        runner first, with the events and history of the example that just ended."""
        if self.on_reset is not None:
            self.on_reset(self)
        reset = getattr(self.target, "reset", None)
        try:
            if not callable(reset):
                raise NotImplementedError
            reset()
        except (NotImplementedError, Violation):
            # No reset, or the system under test is broken (a crashed proxy): start it afresh.
            self.target.close()
            self.target.open()
        self.model = ClusterState()
        self.events = []
        self.history = History()
        self.memory = AffinityMemory()

    def run(self, events: Iterable[Event]) -> list[Verdict]:
        """Apply every event in order; raises Violation at the first failing step."""
        verdicts = []
        for event in events:
            verdicts.extend(self.step(event))
        return verdicts

    # -- one step -----------------------------------------------------------------------------
    def step(self, event: Event) -> list[Verdict]:
        """Apply one event and check it; a Violation carries the events so far and the history,
        also when the target itself raised it (a proxy that crashed or answered garbage)."""
        try:
            return self._step(event)
        except Violation as violation:
            if not hasattr(violation, "events"):
                if not self.events or self.events[-1] is not event:
                    self.events.append(event)
                violation.events = list(self.events)  # type: ignore[attr-defined]
                violation.history = self.history  # type: ignore[attr-defined]
            self.last_violation = violation
            raise

    def _step(self, event: Event) -> list[Verdict]:
        before = self.model
        after = event.apply(before)
        if isinstance(event, Wait):
            self.clock.sleep(event.seconds)
        applied_s = self.clock.now()
        self.target.apply(event)
        self.model = after
        self.events.append(event)
        if self.on_step is not None:
            self.on_step(event)
        record: dict[str, Any] = {
            "step": len(self.events),
            "event": event.to_json(),
            "applied_at_s": round(applied_s, 6),
            "services": {},
        }
        if isinstance(event, Probe):
            verdicts = self._probe(event, record)
        else:
            verdicts = []
            for name in changed_services(before, after):
                old, new = before.services.get(name), after.services.get(name)
                if old is None or new is None or _affinity_settings(old) != _affinity_settings(new):
                    self.memory.forget(name)
                verdicts.extend(self._settle(name, applied_s, record))
        record["verdicts"] = [v.to_json() for v in verdicts if not v.holds] or len(verdicts)
        self.history.append(record)
        failures = [v for v in verdicts if not v.holds and v.property in self.config.properties]
        if failures:
            violation = Violation(failures[0].message, [v.to_json() for v in failures])
            violation.events = list(self.events)  # type: ignore[attr-defined]
            violation.history = self.history  # type: ignore[attr-defined]
            raise violation
        return verdicts

    # -- convergence --------------------------------------------------------------------------
    def _mismatch(self, name: str, expected: Expectation) -> str | None:
        """Why the target does not (yet) match the model for one Service, or None."""
        observed = self.target.endpoint_slices(name)
        if expected.service is None:
            return "EndpointSlices still published" if unique_endpoints(observed) else None
        if not check_endpoints(name, expected.slices, observed).holds:
            return "EndpointSlices differ from the model"
        if isinstance(self.target, RuleOracle):
            return reachability_mismatch(
                expected.usable, self.target.reachability(name, PORT, CLIENTS[0])
            )
        size = step_batch_size(len(expected.usable)) if expected.usable else 1
        sample = self._send(name, CLIENTS[0], size)
        for check in (check_no_stale, check_reject, check_availability):
            verdict = check(name, expected.usable, sample)
            if not verdict.holds:
                return verdict.message
        return None

    def _settle(self, name: str, applied_s: float, record: dict[str, Any]) -> list[Verdict]:
        expected = expectation(self.model, name)
        self.memory.forget(name, keep=expected.usable)  # affinity ends with its backend
        deadline_s = applied_s + self.config.deadline_s
        pause_s, longest_pause_s = (
            self.config.poll_s,
            max(self.config.deadline_s / 50, self.config.poll_s),
        )
        while True:
            why = self._mismatch(name, expected)
            now_s = self.clock.now()
            if why is None or now_s >= deadline_s:
                break
            self.clock.sleep(min(pause_s, deadline_s - now_s))
            pause_s = min(pause_s * 2, longest_pause_s)
        latency_s = None if why is not None else now_s - applied_s
        verdicts = [check_latency(name, latency_s, self.config.deadline_s, why or "")]
        observed: dict[str, Any] = {"latency_s": latency_s, "usable": _names(expected.usable)}
        record["services"][name] = observed
        verdicts.append(check_endpoints(name, expected.slices, self.target.endpoint_slices(name)))
        if expected.service is None:
            return verdicts
        if isinstance(self.target, RuleOracle):
            reach = self.target.reachability(name, PORT, CLIENTS[0])
            verdicts.append(check_exact_balance(name, expected.usable, reach))
        if self._judges_balance(expected):
            size = self.config.fairness.sample_size(len(expected.usable))
            sample = self._send(name, CLIENTS[0], size)
            verdicts.append(check_fairness(name, expected.usable, sample, self.config.fairness))
        else:
            sample = self._send(name, CLIENTS[0], step_batch_size(len(expected.usable)))
        observed.update(_summary(sample))
        verdicts.extend(self._traffic_verdicts(expected, sample))
        return verdicts

    def _judges_balance(self, expected: Expectation) -> bool:
        """Whether a fresh-connection sample can test fairness here: only when the fairness
        property is selected (its samples are large) and the Service balances (no affinity)."""
        return (
            "fairness" in self.config.properties
            and expected.service is not None
            and expected.service.session_affinity == Affinity.NONE
            and len(expected.usable) >= 2
        )

    # -- probes -------------------------------------------------------------------------------
    def _probe(self, probe: Probe, record: dict[str, Any]) -> list[Verdict]:
        expected = expectation(self.model, probe.service)
        assert expected.service is not None  # Probe.apply checked it exists
        usable = len(expected.usable)
        balanced = expected.service.session_affinity == Affinity.NONE
        if probe.keep_alive:
            sample = self._send(
                probe.service, probe.client, KEEPALIVE_CONNECTIONS * 8, KEEPALIVE_CONNECTIONS
            )
        elif self._judges_balance(expected):
            sample = self._send(
                probe.service, probe.client, self.config.fairness.sample_size(usable)
            )
        else:
            sample = self._send(probe.service, probe.client, max(AFFINITY_CONFIRM_COUNT, usable))
        observed = {"usable": _names(expected.usable), **_summary(sample)}
        record["services"][probe.service] = observed
        verdicts = self._traffic_verdicts(expected, sample)
        if probe.keep_alive:
            observed["per_connection"] = _per_connection(sample)
        elif balanced:
            verdicts.append(
                check_fairness(probe.service, expected.usable, sample, self.config.fairness)
            )
        return verdicts

    def _traffic_verdicts(self, expected: Expectation, sample: TrafficSample) -> list[Verdict]:
        assert expected.service is not None
        name = expected.service.name
        return [
            check_no_stale(name, expected.usable, sample),
            check_reject(name, expected.usable, sample),
            check_availability(name, expected.usable, sample),
            check_affinity(expected.service, expected.usable, sample, self.memory),
        ]

    def _send(self, service: str, client: str, count: int, connections: int = 1) -> TrafficSample:
        return self.target.send(
            TrafficRequest(
                service=service,
                client=client,
                count=count,
                keep_alive=connections > 1,
                connections=connections,
                port=PORT,
                timeout_s=self.config.request_timeout_s,
            )
        )


def _affinity_settings(service: Service) -> tuple[str, int]:
    return (service.session_affinity.value, service.affinity_timeout_s)


def _names(backends: Collection[Backend]) -> list[str]:
    return sorted(str(b) for b in backends)


def _summary(sample: TrafficSample) -> dict[str, Any]:
    return {
        "client": sample.request.client,
        "requests": len(sample.outcomes),
        "hits": {str(b): n for b, n in sorted(sample.hits().items())},
        "errors": {k.value: n for k, n in sample.errors().items()},
        "duration_s": round(sample.finished_s - sample.started_s, 6),
    }


def _per_connection(sample: TrafficSample) -> dict[str, Any]:
    """Kept-alive balancing, reported per connection and never asserted (kubernetes#38456)."""
    by_connection: dict[int, set[str]] = {}
    for outcome in sample.outcomes:
        if outcome.backend is not None:
            by_connection.setdefault(outcome.connection, set()).add(str(outcome.backend))
    first = {c: sorted(b)[0] for c, b in by_connection.items() if b}
    distinct = sorted(set(first.values()))
    return {
        "connections": len(by_connection),
        "backends_reached": distinct,
        **{k: v for k, v in balance_report(set(), sample).items() if k == "jain"},
    }


def replay(target: Target, events: Sequence[Event], config: RunConfig | None = None) -> Runner:
    """Run `events` once on an opened target from empty; raises Violation like `Runner.step`."""
    runner = Runner(target, config)
    runner.reset()
    runner.run(events)
    return runner
