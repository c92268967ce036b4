"""The runner: apply each event to the model and the target, wait for convergence, observe, check.

One step, for every event (the flow in docs/architecture.md):

1. the model computes the state after the event (pure); a `Wait` first lets the time pass on the
   target's clock;
2. the target is told to make the change (`Target.apply`);
3. for every Service whose expected endpoints or settings changed, the runner polls the target
   (bounded by the deadline, on the target's clock) until its EndpointSlices and data plane match
   the model, and confirms it on a sample of fresh connections sized by
   `harness.checks.confidence`; the time from the change to the start of that clean observation
   is the programming latency;
4. every property is checked on what was observed (one history, many checkers);
5. everything goes into the history, and the step's verdicts, failing or not, are returned. The
   runner never decides what a failure means: the search (`harness.search`) and the replay do.

A `Probe` event instead sends a large sample sized for the fairness test's power (or a
kept-alive sample), and with `many_clients` one connection from each of many client addresses,
which is how affinity expiry is judged.

A proxy that crashes, hangs or breaks its protocol (`ProxyFailure`) ends the step with one
`proxy-contract` verdict; the runner is then `broken` until the next `reset`.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.checks import PROXY_CONTRACT
from harness.checks.affinity import AffinityMemory, check_affinity
from harness.checks.confidence import (
    AlarmBudget,
    connections_for_deviation,
    expiry_clients,
    liveness_size,
)
from harness.checks.endpoints import check_endpoints
from harness.checks.fairness import balance_report, check_fairness, sample_size
from harness.checks.latency import check_latency
from harness.checks.rules import check_exact_balance
from harness.checks.traffic import check_availability, check_no_stale, check_reject
from harness.checks.verdict import Verdict, failed, passed
from harness.convergence import (
    Converger,
    ServiceWait,
    balances,
    confirmation_size,
)
from harness.coverage import (
    AFFINITY_FEATURES,
    ExampleMemory,
    change_features,
    service_features,
)
from harness.events import NEMESIS_EVENTS, Event, Probe, RestartProxy, Wait
from harness.externalclients import ExternalClients
from harness.history import History
from harness.longlived import LongLived
from harness.model.endpoints import Expectation, expect, why_unusable
from harness.model.objects import Backend, Service
from harness.model.state import ClusterState
from harness.node_port_rules import node_port_balance
from harness.nodeclients import NodeClients
from harness.podclients import PodClients
from harness.ports import (
    REMOVED_SAMPLE,
    judge_other_ports,
    judge_removed_port,
    port_label,
    removed_ports,
)
from harness.proxies.failure import ProxyFailure
from harness.restart_traffic import DuringRestart
from harness.targets.base import Target, keeps_proxy_state, reads_rules
from harness.traffic import (
    CLIENTS,
    Counted,
    ErrorKind,
    Reachability,
    Tally,
    TrafficRequest,
    TrafficSample,
)

PORT = "http"
KEEPALIVE_CONNECTIONS = 4
AFFINITY_CONFIRM_COUNT = 15  # test/e2e/network/service.go AffinityConfirmCount
TALLY_BATCH = 20000  # connections per batch when a target cannot count at its pods


@dataclass(frozen=True)
class RunConfig:
    """How long the runner waits and how it judges samples.

    `deadline_s` bounds every convergence wait; `poll_s` is the first pause between polls (it
    doubles up to a fiftieth of the deadline, so a latency is known to within 2%);
    `request_timeout_s` bounds every request; `budget` is the run's false-alarm budget for the
    statistical checks.
    """

    deadline_s: float = 30.0
    poll_s: float = 0.02
    request_timeout_s: float = 1.0
    budget: AlarmBudget = field(default_factory=AlarmBudget)


@dataclass(frozen=True)
class StepResult:
    """One step: every verdict, and the coverage features it reached and checked."""

    event: Event
    verdicts: tuple[Verdict, ...]
    reached: frozenset[str] = frozenset()
    checked: frozenset[str] = frozenset()

    def failures(self, properties: Collection[str] | None = None) -> list[Verdict]:
        """The failing verdicts (of `properties` only, when given)."""
        return [
            v
            for v in self.verdicts
            if not v.holds and (properties is None or v.property in properties)
        ]

    def joined(
        self, verdicts: Sequence[Verdict], reached: frozenset[str], checked: frozenset[str]
    ) -> StepResult:
        """This step with more verdicts and coverage features (judged after its own checks)."""
        return StepResult(
            self.event,
            self.verdicts + tuple(verdicts),
            self.reached | reached,
            self.checked | checked,
        )


def changed_services(before: ClusterState, after: ClusterState) -> list[str]:
    """Services whose settings, endpoints or usable backends differ between two states."""
    names = sorted(set(before.services) | set(after.services))
    return [n for n in names if expect(before, n, PORT) != expect(after, n, PORT)]


class Runner:
    """Drives one target through events; holds the model, the history and the checker memory."""

    def __init__(self, target: Target, config: RunConfig | None = None) -> None:
        self.target = target
        self.config = config or RunConfig()
        self.clock = target.clock
        self.model = ClusterState()
        self.events: list[Event] = []
        self.history = History()
        self.memory = AffinityMemory()
        self.example = ExampleMemory()
        self.missed: dict[str, set[tuple[object, ...]]] = {}
        self.broken: ProxyFailure | None = None
        self.reset_failure: ProxyFailure | None = None
        self.long_lived = LongLived(target, self.config.request_timeout_s)
        self.pod_clients = PodClients(target, self.config.request_timeout_s)
        self.node_clients = NodeClients(target, self.config.request_timeout_s)
        self.external_clients = ExternalClients(target, self.config.request_timeout_s)
        self.interim = False  # the last step ended on a state its proxy says is not final

    # -- lifecycle ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Return target, model and records to empty: a fresh proxy, fresh addresses (between
        examples and before every replay). Targets without `reset` are closed and reopened.

        A fresh proxy that fails to start (`ProxyFailure`: a process whose predecessor left
        something behind, or that answers its first requests wrongly) is kept in
        `reset_failure` for the caller to judge, and the target is closed and opened anew.
        The mismatches Services missed their deadlines with (`missed`) are kept: a data plane
        broken one way is not waited for again in the next example (a fresh Runner, as every
        confirmation uses, waits for everything)."""
        reset = getattr(self.target, "reset", None)
        self.reset_failure = None
        self.long_lived.reset()
        try:
            if not callable(reset):
                raise NotImplementedError
            reset()
        except NotImplementedError:
            self.target.close()
            self.target.open()
        except ProxyFailure as failure:
            self.reset_failure = failure
            self.target.close()
            self.target.open()
        self.model = ClusterState()
        self.events = []
        self.history = History()
        self.memory = AffinityMemory()
        self.example = ExampleMemory()
        self.broken = None

    def run(self, events: Iterable[Event]) -> list[StepResult]:
        """Apply every event in order (stopping early if the proxy breaks its contract)."""
        results = []
        for event in events:
            results.append(self.step(event))
            if self.broken is not None:
                break
        return results

    # -- one step -----------------------------------------------------------------------------
    def step(self, event: Event) -> StepResult:
        """Apply one event and check every property; returns all verdicts, failing or not."""
        if self.broken is not None:
            raise RuntimeError("the runner's target broke its contract; reset() first")
        before = self.model
        after = event.apply(before)
        if isinstance(event, Wait):
            self.clock.sleep(event.seconds)
        applied_s = self.clock.now()
        self.model = after
        self.events.append(event)
        record: dict[str, Any] = {
            "step": len(self.events),
            "event": event.to_json(),
            "applied_at_s": round(applied_s, 6),
            "services": {},
        }
        try:
            during = DuringRestart(
                self.target, event, after, PORT, self.config.request_timeout_s, self.clock.now
            )
            with during:  # fresh connections while a proxy that keeps its rules restarts
                self.target.apply(event)
            result = self._check(event, before, after, applied_s, record)
            result = result.joined(during.verdicts(), frozenset(), frozenset())
            result = self._held(result, after, record)
            result = self._from_pod(result, after, record)
            result = self._from_nodes(result, event, before, after, record)
        except ProxyFailure as failure:
            self.broken = failure
            verdict = failed(PROXY_CONTRACT, str(failure), **failure.evidence)
            result = StepResult(event, (verdict,))
        self.example.after(before, after)
        record["verdicts"] = [v.to_json() for v in result.verdicts if not v.holds] or len(
            result.verdicts
        )
        record["features"] = sorted(result.checked)
        self.history.append(record)
        return result

    def _held(self, result: StepResult, after: ClusterState, record: dict[str, Any]) -> StepResult:
        """Judge the long-lived connections after the step and open new ones
        (`harness.longlived`); their verdict and feature join the step's. Not on a state the
        proxy says is not final (they are asked after the next step)."""
        if self.interim:
            return result
        verdicts, features = self.long_lived.after(len(self.events), result.event, after)
        if not verdicts:
            return result
        record["long_lived"] = verdicts[0].evidence.get("connections", [])
        return result.joined(verdicts, features, features)

    def _from_pod(
        self, result: StepResult, after: ClusterState, record: dict[str, Any]
    ) -> StepResult:
        """One sample from a pod through its own Service (`harness.podclients`): source IP and
        hairpin; its verdicts and features join the step's. Not on a state the proxy says is
        not final, nor after a step that already failed: a data plane broken for every client
        would fail it too, and it must single out what only a pod client sees."""
        if self.interim or result.failures():
            return result
        verdicts, reached, checked = self.pod_clients.after(len(self.events), after, record)
        return result.joined(verdicts, reached, checked)

    def _from_nodes(
        self,
        result: StepResult,
        event: Event,
        before: ClusterState,
        after: ClusterState,
        record: dict[str, Any],
    ) -> StepResult:
        """A few connections from every node's host network to the changed Services
        (`harness.nodeclients`): `every-node`; then, if that held, from the external client to
        every node's node port of the changed NodePort and LoadBalancer Services
        (`harness.externalclients`): `node-port`. Not on a state the proxy says is not final,
        nor after a step that already failed (as `_from_pod`)."""
        for clients in (self.node_clients, self.external_clients):
            if self.interim or result.failures():
                return result
            found = clients.after(len(self.events), event, before, after, record)
            result = result.joined(*found)
        return result

    def _check(
        self,
        event: Event,
        before: ClusterState,
        after: ClusterState,
        applied_s: float,
        record: dict[str, Any],
    ) -> StepResult:
        names = [event.service] if isinstance(event, Probe) else changed_services(before, after)
        restarted = isinstance(event, NEMESIS_EVENTS)
        if restarted:  # a restarted (or misinformed) proxy programs everything anew
            names = sorted(after.services)
        # a proxy that keeps its rules across a restart (kube-proxy) keeps its affinity memory
        kept = isinstance(event, RestartProxy) and keeps_proxy_state(self.target)
        expectations = {}
        for name in names:
            old, new = before.services.get(name), after.services.get(name)
            if (
                old is None
                or new is None
                or _affinity_settings(old) != _affinity_settings(new)
                or (restarted and not kept)  # its rules, and their affinity memory, went
            ):
                self.memory.forget(name)
            expectations[name] = expect(after, name, PORT)
        waits: dict[str, ServiceWait] = {}
        if not isinstance(event, Probe):
            waits = self._converge(expectations, applied_s)
        self.interim = any(wait.still_syncing for wait in waits.values())
        verdicts: list[Verdict] = []
        reached: set[str] = set()
        checked: set[str] = set()
        for name, expected in expectations.items():
            features = service_features(expected) | change_features(
                before, after, event, name, expected, self.example
            )
            if isinstance(event, Probe):
                found, sampled = self._probe(event, expected, record)
            else:
                found, sampled = self._settle(waits[name], record)
            verdicts += found
            reached |= features - AFFINITY_FEATURES
            if sampled:
                checked |= features - AFFINITY_FEATURES
            reached_affinity, checked_affinity = _affinity_features(found)
            reached |= reached_affinity
            checked |= checked_affinity
        if getattr(self.target, "addresses_removed_ports", False) and not isinstance(event, Probe):
            for name in expectations:
                for port in removed_ports(before.services.get(name), after.services.get(name)):
                    verdicts.append(self._removed_port(name, port))
        return StepResult(event, tuple(verdicts), frozenset(reached), frozenset(checked))

    def _removed_port(self, name: str, port: tuple[int, str]) -> Verdict:
        """`no-stale-traffic`'s part `removed-port` (`harness.ports.judge_removed_port`): fresh
        connections, all at once, to a port the Service no longer has, looked at again (with
        the convergence wait's doubling pauses) until no pod answers or the deadline passes."""
        deadline_s = self.clock.now() + self.config.deadline_s
        pause_s = self.config.poll_s
        while True:
            sample = self.target.send(
                TrafficRequest(
                    name,
                    CLIENTS[0],
                    REMOVED_SAMPLE,
                    timeout_s=self.config.request_timeout_s,
                    parallel=True,
                    removed_port=port,
                )
            )
            answered = any(o.backend is not None for o in sample.outcomes)
            if not answered or self.clock.now() >= deadline_s:
                return judge_removed_port(name, port, sample)
            self.clock.sleep(pause_s)
            pause_s = min(pause_s * 2, max(self.config.deadline_s / 50, self.config.poll_s))

    # -- convergence --------------------------------------------------------------------------
    def _converge(
        self, expectations: dict[str, Expectation], applied_s: float
    ) -> dict[str, ServiceWait]:
        """Wait for every changed Service at once (`harness.convergence`)."""
        waits = {
            name: ServiceWait(
                name,
                expected,
                applied_s,
                applied_s + self.config.deadline_s,
                frozenset(self.missed.get(name, ())),
            )
            for name, expected in expectations.items()
        }
        for name, expected in expectations.items():
            self.memory.forget(name, keep=expected.usable)  # affinity ends with its backend
        longest_pause_s = max(self.config.deadline_s / 50, self.config.poll_s)
        converger = Converger(
            self.target,
            PORT,
            self.clock,
            lambda name, count, at_once: self._send(
                name, CLIENTS[0], count, limited=True, at_once=at_once
            ),
            self.config.poll_s,
            longest_pause_s,
        )
        converger.run(list(waits.values()))
        return waits

    def _settle(self, wait: ServiceWait, record: dict[str, Any]) -> tuple[list[Verdict], bool]:
        """Judge one Service after its wait; whether traffic was judged."""
        name, expected = wait.name, wait.expected
        if wait.latency_s is None and wait.mismatch is not None:
            self.missed.setdefault(name, set()).add(wait.mismatch.key)
        latency = check_latency(name, wait.latency_s, self.config.deadline_s, wait.why)
        if wait.basis:  # what "converged" rested on (harness.convergence.basis)
            evidence = {**latency.evidence, "convergence": wait.basis}
            latency = Verdict(latency.property, latency.holds, latency.message, evidence)
        verdicts = [
            latency,
            check_endpoints(name, expected.slices, self.target.endpoint_slices(name)),
        ]
        observed: dict[str, Any] = {
            "latency_s": wait.latency_s,
            "usable": _names(expected.usable),
            "confirmations": wait.confirmations,
            "convergence": wait.basis,
        }
        record["services"][name] = observed
        if expected.service is None:
            return verdicts, False
        if wait.still_syncing:  # an interim state, by the proxy's own report: latency alone
            return verdicts, False
        if reads_rules(self.target):
            reach = self.target.reachability(name, PORT, CLIENTS[0])  # type: ignore[attr-defined]
            verdicts.append(
                check_exact_balance(
                    name, expected.usable, reach, expected.drops, expected.opted_out
                )
            )
            verdicts += node_port_balance(self.target, self.model, name, PORT)
        sample = wait.sample
        if sample is None:  # nothing sent yet (the control plane never matched): judge anyway
            sample = self._send(
                name, CLIENTS[0], confirmation_size(expected), limited=True, at_once=True
            )
        observed.update(_summary(sample))
        verdicts += self._traffic_verdicts(expected, sample)
        if balances(expected):
            verdicts.append(check_fairness(name, expected.usable, sample, self.config.budget))
        verdicts += self._other_ports(name, wait.latency_s is not None)
        return verdicts, True

    def _other_ports(self, name: str, converged: bool) -> list[Verdict]:
        """The Service's ports after the first, each judged on its own confirmation sample
        (`harness.ports`). When the first port `converged`, each is waited for as it was (a
        proxy may program its ports one after another: nginx and haproxy reload); when it did
        not, the data plane is already known not to match, and each is judged at once on one
        sample, so a broken data plane costs one deadline a step, not one a port."""

        def send_at_once(port: str, expected: Expectation) -> TrafficSample:
            count = confirmation_size(expected)
            return self._send(name, CLIENTS[0], count, limited=True, at_once=True, port=port)

        def send(port: str, expected: Expectation) -> TrafficSample:
            if not converged:
                return send_at_once(port, expected)
            now_s = self.clock.now()
            missed = self.missed.setdefault(port_label(name, port), set())
            deadline_s = now_s + self.config.deadline_s
            wait = ServiceWait(name, expected, now_s, deadline_s, frozenset(missed))
            Converger(
                self.target,
                port,
                self.clock,
                lambda service, count, at_once: self._send(
                    service, CLIENTS[0], count, limited=True, at_once=at_once, port=port
                ),
                self.config.poll_s,
                max(self.config.deadline_s / 50, self.config.poll_s),
            ).run([wait])
            if wait.latency_s is None and wait.mismatch is not None:  # as `_settle` remembers
                missed.add(wait.mismatch.key)
            if wait.sample is not None:
                return wait.sample
            return send_at_once(port, expected)

        def read(port: str) -> Reachability:
            return self.target.reachability(name, port, CLIENTS[0])  # type: ignore[attr-defined,no-any-return]

        return judge_other_ports(
            self.model, name, PORT, send, read if reads_rules(self.target) else None
        )

    # -- probes -------------------------------------------------------------------------------
    def _probe(
        self, probe: Probe, expected: Expectation, record: dict[str, Any]
    ) -> tuple[list[Verdict], bool]:
        assert expected.service is not None  # Probe.apply checked it exists
        usable = len(expected.usable)
        if probe.deviation is not None:
            return self._balance_probe(probe, expected, record), True
        if probe.keep_alive:
            sample = self._send(
                probe.service, probe.client, KEEPALIVE_CONNECTIONS * 8, KEEPALIVE_CONNECTIONS
            )
        elif balances(expected):
            size = sample_size(usable, self.config.budget.per_check)
            sample = self._send(probe.service, probe.client, size)
        else:
            sample = self._send(probe.service, probe.client, max(AFFINITY_CONFIRM_COUNT, usable))
        observed = {"usable": _names(expected.usable), **_summary(sample)}
        record["services"][probe.service] = observed
        verdicts = self._traffic_verdicts(expected, sample)
        if probe.keep_alive:
            observed["per_connection"] = _per_connection(sample)
        elif balances(expected):
            verdicts.append(
                check_fairness(probe.service, expected.usable, sample, self.config.budget)
            )
        if probe.many_clients:
            spread = self._many_clients(probe, expected)
            if spread is not None:
                observed["many_clients"] = _summary(spread)
                verdicts += self._traffic_verdicts(expected, spread)
        return verdicts, True

    def _balance_probe(
        self, probe: Probe, expected: Expectation, record: dict[str, Any]
    ) -> list[Verdict]:
        """A sample sized to detect `probe.deviation` of one endpoint's share with power 0.9 at
        the fairness test's level, counted (`Target.tally`) rather than sent one by one."""
        assert probe.deviation is not None
        name, n = probe.service, len(expected.usable)
        if not balances(expected):
            return [passed("fairness", f"{name}: {n} usable endpoint(s) without affinity needed")]
        alpha = self.config.budget.per_check / 2
        size = max(connections_for_deviation(n, probe.deviation, alpha), liveness_size(n, alpha))
        tally = self._tally(name, probe.client, size)
        record["services"][name] = {
            "usable": _names(expected.usable),
            "requests": tally.total,
            "hits": {str(b): c for b, c in sorted(tally.hits().items())},
            "errors": {k.value: c for k, c in tally.errors().items()},
            "duration_s": round(tally.finished_s - tally.started_s, 3),
        }
        return [
            self._explained(check_no_stale(name, expected.usable, tally), name, tally),
            check_availability(name, expected.usable, tally),
            check_fairness(name, expected.usable, tally, self.config.budget),
        ]

    def _tally(self, service: str, client: str, count: int) -> Tally:
        """`count` fresh connections, counted: by the target's own `tally` where it has one,
        else sent in bounded batches and added up."""
        request = TrafficRequest(
            service=service,
            client=client,
            count=count,
            port=PORT,
            timeout_s=self.config.request_timeout_s,
        )
        tally = getattr(self.target, "tally", None)
        if callable(tally):
            counted: Tally = tally(request)
            return counted
        answered: Counter[Backend] = Counter()
        failed: Counter[ErrorKind] = Counter()
        started_s = self.clock.now()
        for offset in range(0, count, TALLY_BATCH):
            sample = self._send(service, client, min(TALLY_BATCH, count - offset))
            answered.update(sample.hits())
            failed.update(sample.errors())
        return Tally(request, answered, failed, started_s, self.clock.now())

    def _many_clients(self, probe: Probe, expected: Expectation) -> TrafficSample | None:
        """One fresh connection from each of the client's further addresses, in an order drawn
        from the sequence (so a replay sends the same): as many as judging expiry needs at any
        number of endpoints, or all the target offers."""
        offered = int(getattr(self.target, "max_sources", 1)) - 1
        needed = expiry_clients(2, self.config.budget.per_check) or 1  # n = 2 needs the most
        count = min(offered, needed)
        if count < 1:
            return None
        order = list(range(1, count + 1))
        seed = zlib.crc32(f"{len(self.events)}:{probe.service}:{probe.client}".encode())
        random.Random(seed).shuffle(order)
        return self.target.send(
            TrafficRequest(
                service=probe.service,
                client=probe.client,
                count=count,
                port=PORT,
                timeout_s=self.config.request_timeout_s,
                sources=tuple(order),
                parallel=self._drops(probe.service),
            )
        )

    def _traffic_verdicts(self, expected: Expectation, sample: TrafficSample) -> list[Verdict]:
        assert expected.service is not None
        name = expected.service.name
        return [
            self._explained(check_no_stale(name, expected.usable, sample), name, sample),
            check_reject(name, expected.usable, sample, expected.drops, expected.opted_out),
            check_availability(name, expected.usable, sample),
            check_affinity(
                expected.service, expected.usable, sample, self.memory, self.config.budget
            ),
        ]

    def _explained(self, verdict: Verdict, service: str, sample: Counted) -> Verdict:
        """A failing no-stale verdict, its message naming why each reached backend was not to
        be used (its endpoint's conditions, or what became of its pod)."""
        if verdict.holds:
            return verdict
        reasons = {
            str(b): why_unusable(self.model, service, b)
            for b in sorted(sample.hits())
            if str(b) in verdict.evidence.get("stale_hits", {})
        }
        text = "; ".join(f"{b}: {why}" for b, why in reasons.items())
        return Verdict(
            verdict.property,
            False,
            f"{verdict.message} ({text})",
            {**verdict.evidence, "why_unusable": reasons},
        )

    def _send(
        self,
        service: str,
        client: str,
        count: int,
        connections: int = 1,
        limited: bool = False,
        at_once: bool = False,
        port: str = PORT,
    ) -> TrafficSample:
        """One batch; `limited` batches stop starting requests after the deadline's length, so
        a data plane that drops everything costs one deadline, not one timeout per request. To a
        Service whose new connections the model drops (`Expectation.drops`) the requests are
        fresh and sent in parallel: the sample costs one request timeout.

        `at_once` sends fresh requests in parallel too: for the sample a Service that missed its
        deadline is judged by. Sent one by one under the time limit, a single timeout (a stale
        endpoint whose pod is gone) would use the whole limit and leave a sample of one
        request, whose verdict then depends on which endpoint that request happened to reach;
        at once, every requested connection is judged and the verdict reproduces."""
        parallel = at_once or self._drops(service, port)
        return self.target.send(
            TrafficRequest(
                service=service,
                client=client,
                count=count,
                keep_alive=connections > 1 and not parallel,
                connections=connections,
                port=port,
                timeout_s=self.config.request_timeout_s,
                time_limit_s=self.config.deadline_s if limited else None,
                parallel=parallel,
            )
        )

    def _drops(self, service: str, port: str = PORT) -> bool:
        """Whether the model drops new connections to `service`'s `port` now (none usable, some
        endpoints: `harness.model.endpoints.has_any_endpoints`)."""
        return expect(self.model, service, port).drops


def _affinity_features(verdicts: Sequence[Verdict]) -> tuple[set[str], set[str]]:
    """The affinity features a step's affinity verdicts saw (reached) and judged (checked)."""
    reached: set[str] = set()
    checked: set[str] = set()
    for verdict in verdicts:
        if verdict.property != "affinity":
            continue
        if verdict.evidence.get("returned_orphans", 0):
            reached.add("affinity-backend-removed")
            checked.add("affinity-backend-removed")
        if verdict.evidence.get("idle_clients", 0):
            reached.add("affinity-idle-past-timeout")
            if verdict.evidence.get("expiry_judged"):
                checked.add("affinity-idle-past-timeout")
    return reached, checked


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
    """Run `events` once on an opened target from a reset; the runner keeps every result in
    its history."""
    runner = Runner(target, config)
    runner.reset()
    runner.run(events)
    return runner
