"""Waiting for a change to be programmed, with stated confidence (`harness.checks.confidence`).

After a step, every Service whose expectation changed has a `ServiceWait`. All of them are polled in
turn (so a Service's latency does not include the time spent observing the others) until each
one's EndpointSlices and data plane match the model, or its deadline passes:

1. the control plane: the published slices equal the model's; the proxy reports that it has
   programmed every change handed to it (`sync_state`, where the target gives that evidence);
   and where the target shows its rules (`RuleOracle`), the rules send new connections exactly
   where the model says;
2. a clean window: `CLEAN_WINDOW` fresh connections, every one right (targets without rules);
3. a confirmation sample of `confirmation_size` fresh connections, every one right and every
   usable endpoint reached (for a Service that balances). At most `CONFIRMATIONS` are drawn, the
   last one after the deadline; the Service has converged when one is clean, and its latency is
   the time from the change to the first observation of the clean run that led there.

A mismatch the Service already missed its deadline with (`known`, compared by its `Mismatch.key`,
which leaves out counts that differ from sample to sample) is not waited for again, so a broken
data plane costs one deadline per Service, not one per step.

Why the proxy's own report comes first: traffic cannot tell an old rule from a new one that sends
to the same address and port. On a same-IP pod restart the rules of the state before deliver
connections to the new incarnation, so a step looks converged through them; then the proxy
programs the interim state the EndpointSlice controller published (the pod missing, for up to
kube-proxy's `--min-sync-period`) while the balancing sample is drawn (issue 15). So no sample is
judged before the proxy says its state is final. A proxy that says so wrongly is still caught by
the traffic that follows; a target that gives no such evidence is judged by traffic alone, and
the latency verdict's evidence says which (`ServiceWait.basis`).

Reads the target only (slices, sync reports, rules, fresh connections); changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.checks.confidence import (
    CLEAN_WINDOW,
    CONFIRMATION_SIZE,
    CONFIRMATIONS,
    liveness_size,
)
from harness.checks.endpoints import check_endpoints
from harness.checks.rules import reachability_mismatch
from harness.checks.traffic import check_availability, check_no_stale, check_reject
from harness.checks.verdict import Verdict
from harness.clock import Clock
from harness.model.endpoints import Expectation, unique_endpoints
from harness.model.objects import Affinity
from harness.proxies.base import SyncState
from harness.targets.base import Target, reads_rules
from harness.traffic import CLIENTS, TrafficSample

LIVENESS_MISS = 1e-3
"""A confirmation sample of a correct balancer misses a usable endpoint at most this often."""

NOT_SYNCED: tuple[object, ...] = ("proxy not synced",)
"""The key of the mismatch "the proxy reports a change it has not programmed yet"."""

Send = Callable[[str, int, bool], TrafficSample]
"""Sends `count` fresh connections to a Service (bounded by the deadline's length); with the
flag set, all at once (`TrafficRequest.parallel`), so the sample costs one request timeout."""


def confirmation_size(expected: Expectation) -> int:
    """Fresh connections in one confirmation sample: the stale-traffic bound, enough for a
    correct balancer to reach every usable endpoint, and 5 per endpoint for the chi-square."""
    n = len(expected.usable)
    return max(CONFIRMATION_SIZE, liveness_size(n, LIVENESS_MISS), 5 * n)


def basis(sync_source: str | None, oracle: bool) -> str:
    """What a converged step rests on, for the latency verdict's evidence: the proxy's sync
    evidence (None: it gives none, and traffic alone stands for it), rules, then traffic."""
    traffic = "a confirmation sample of fresh connections" + (
        "" if oracle else " after a clean window"
    )
    rules = "the rules read back, then " if oracle else ""
    if sync_source is None:
        return f"no sync evidence from the target (traffic alone stands for it): {rules}{traffic}"
    return f"sync evidence ({sync_source}), then {rules}{traffic}"


def balances(expected: Expectation) -> bool:
    """Whether fresh connections from one client should spread over the usable endpoints."""
    return (
        expected.service is not None
        and expected.service.session_affinity == Affinity.NONE
        and len(expected.usable) >= 2
    )


@dataclass(frozen=True)
class Mismatch:
    """Why a Service does not match the model yet: the message for a person, and a key that is
    the same whenever the data plane is wrong in the same way (which backends a stale hit
    reached, which kinds of error, which endpoints are unreached; not how many times)."""

    message: str
    key: tuple[object, ...]


def _counted_keys(verdict: Verdict) -> tuple[object, ...]:
    evidence = verdict.evidence
    parts = [sorted(evidence.get(name) or ()) for name in ("stale_hits", "errors")]
    firsts = [(o.get("error"), o.get("backend")) for o in evidence.get("outcomes", [])[:1]]
    return (verdict.property, *map(tuple, parts), tuple(firsts))


def sample_mismatch(expected: Expectation, sample: TrafficSample) -> Mismatch | None:
    """Why a sample shows an unconverged data plane: a wrong outcome, no outcome at all, or
    (for a balancing Service, with a sample large enough) a usable endpoint not reached."""
    name = expected.service.name if expected.service else "?"
    for verdict in (
        check_no_stale(name, expected.usable, sample),
        check_reject(name, expected.usable, sample, expected.drops, expected.opted_out),
        check_availability(name, expected.usable, sample),
    ):
        if not verdict.holds:
            return Mismatch(verdict.message, _counted_keys(verdict))
    if not sample.outcomes:
        message = f"{name}: no request could be sent within the time left"
        return Mismatch(message, ("nothing sent",))
    if balances(expected) and len(sample.outcomes) >= liveness_size(
        len(expected.usable), LIVENESS_MISS
    ):
        unreached = sorted(str(b) for b in expected.usable - set(sample.hits()))
        if unreached:
            message = f"{name}: usable endpoint(s) not reached yet: {', '.join(unreached)}"
            return Mismatch(message, ("unreached", *unreached))
    return None


@dataclass
class ServiceWait:
    """One Service's wait (see the module docstring); `latency_s`, `why` and `sample` hold the
    outcome once `done`: the latency (None: not converged), why it still differed, and the
    sample its traffic verdicts judge (None if no traffic was sent)."""

    name: str
    expected: Expectation
    applied_s: float
    deadline_s: float
    known: frozenset[tuple[object, ...]] = frozenset()
    clean_since_s: float | None = None
    window: int = 0
    confirmations: int = 0
    sample: TrafficSample | None = None
    done: bool = False
    latency_s: float | None = None
    mismatch: Mismatch | None = None
    note: str = ""
    basis: str = ""

    @property
    def why(self) -> str:
        """Why it did not converge (empty when it did)."""
        if self.latency_s is not None and self.done:
            return ""
        return (self.mismatch.message if self.mismatch else "not confirmed") + self.note

    @property
    def still_syncing(self) -> bool:
        """Whether it ended unconverged with the proxy still reporting a change it has not
        programmed: its data plane is an interim state, which no traffic verdict judges (the
        latency verdict fails, naming why)."""
        return (
            self.done
            and self.latency_s is None
            and self.mismatch is not None
            and self.mismatch.key == NOT_SYNCED
        )

    def finish(self, latency_s: float | None, note: str = "") -> None:
        self.done, self.latency_s, self.note = True, latency_s, note


class Converger:
    """Polls a target until every `ServiceWait` is done (module docstring)."""

    def __init__(
        self,
        target: Target,
        port: str,
        clock: Clock,
        send: Send,
        poll_s: float,
        longest_pause_s: float,
    ) -> None:
        self.target = target
        self.port = port
        self.clock = clock
        self.send = send
        self.poll_s = poll_s
        self.longest_pause_s = longest_pause_s
        self.oracle = reads_rules(target)
        self.reports_sync = callable(getattr(target, "sync_state", None))

    def run(self, waits: Sequence[ServiceWait]) -> None:
        """Poll every wait in turn until all are done: each pass first observes every pending
        Service (control plane and window: cheap, so no Service's latency includes another's
        confirmation), then draws the confirmations that are due."""
        pause_s = self.poll_s
        while True:
            ready = [w for w in waits if not w.done and self._observe(w)]
            for wait in ready:
                self._confirm_or_retry(wait)
            for wait in waits:
                if not wait.done and self.clock.now() >= wait.deadline_s:
                    self._give_up(wait)
            pending = [w for w in waits if not w.done]
            if not pending:
                return
            left_s = min(w.deadline_s for w in pending) - self.clock.now()
            self.clock.sleep(min(pause_s, max(left_s, 0.0)))
            pause_s = min(pause_s * 2, self.longest_pause_s)

    def _observe(self, wait: ServiceWait) -> bool:
        """One cheap observation; whether a confirmation is due. May finish the wait (a deleted
        Service withdrawn, or a mismatch already known to outlast the deadline)."""
        expected = wait.expected
        why = (
            self._slices_mismatch(wait.name, expected)
            or self._unsynced(wait)
            or self._rules_mismatch(wait.name, expected)
        )
        if why is None and expected.service is None:
            wait.finish(self.clock.now() - wait.applied_s)
            return False
        if why is None:
            if wait.clean_since_s is None:
                wait.clean_since_s = self.clock.now()
            if not self.oracle and wait.window < CLEAN_WINDOW:
                wait.sample = self.send(wait.name, CLEAN_WINDOW - wait.window, False)
                why = sample_mismatch(expected, wait.sample)
                wait.window += len(wait.sample.outcomes)
        if why is not None:
            wait.mismatch = why
            self._unclean(wait)
            return False
        return self.oracle or wait.window >= CLEAN_WINDOW

    def _confirm_or_retry(self, wait: ServiceWait) -> None:
        if wait.confirmations == CONFIRMATIONS - 1:  # the last one: after the deadline
            self.clock.sleep(max(wait.deadline_s - self.clock.now(), 0.0))
        why = self._confirm(wait)
        if why is None:
            assert wait.clean_since_s is not None
            wait.finish(wait.clean_since_s - wait.applied_s)
            return
        wait.mismatch = why
        if wait.confirmations == CONFIRMATIONS:
            wait.finish(None)
        else:
            self._unclean(wait)

    def _unclean(self, wait: ServiceWait) -> None:
        """The run of clean observations broke: start over, unless this mismatch is the one the
        Service already missed its deadline with. A proxy that reports a sync still to come is
        always waited for: that is the normal state of one that syncs once a period, right
        after every change, not a sign of a data plane broken one way."""
        wait.clean_since_s, wait.window = None, 0
        mismatch = wait.mismatch
        if mismatch is not None and mismatch.key != NOT_SYNCED and mismatch.key in wait.known:
            wait.finish(None, " (missed its deadline before; not waited for again)")

    def _give_up(self, wait: ServiceWait) -> None:
        """The deadline passed: draw what the traffic properties judge (if a confirmation is
        left, and the proxy does not report a change still to program: `still_syncing`) and
        finish unconverged."""
        syncing = wait.mismatch is not None and wait.mismatch.key == NOT_SYNCED
        if wait.expected.service is not None and wait.confirmations < CONFIRMATIONS and not syncing:
            drawn = self._confirm(wait, at_once=True)
            wait.mismatch = wait.mismatch or drawn  # the reason seen while waiting comes first
        wait.finish(None)

    def _confirm(self, wait: ServiceWait, at_once: bool = False) -> Mismatch | None:
        wait.confirmations += 1
        wait.sample = self.send(wait.name, confirmation_size(wait.expected), at_once)
        return sample_mismatch(wait.expected, wait.sample)

    def _slices_mismatch(self, name: str, expected: Expectation) -> Mismatch | None:
        """Why the published slices differ from the model; None when they match. (These messages
        hold no counts: they are their own keys.)"""
        observed = self.target.endpoint_slices(name)
        if expected.service is None:
            if unique_endpoints(observed):
                return Mismatch("EndpointSlices still published", ("slices left",))
            return None
        endpoints = check_endpoints(name, expected.slices, observed)
        if not endpoints.holds:
            return Mismatch(endpoints.message, (endpoints.message,))
        return None

    def _unsynced(self, wait: ServiceWait) -> Mismatch | None:
        """Why the proxy's state is not final yet: it reports a change handed to it that it has
        not programmed. The target's optional `sync_state()` gives the report, or None when it
        has none to give now (kube-proxy's metrics unreachable): then traffic alone stands for
        it. Records the evidence in `wait.basis` (module docstring)."""
        state: SyncState | None = None
        if self.reports_sync:
            state = self.target.sync_state()  # type: ignore[attr-defined]
        wait.basis = basis(state.source if state else None, self.oracle)
        if state is None or state.synced:
            return None
        message = f"{wait.name}: the proxy has not programmed every change yet ({state.source})"
        return Mismatch(message, NOT_SYNCED)

    def _rules_mismatch(self, name: str, expected: Expectation) -> Mismatch | None:
        """Why the programmed rules, where the target shows them, differ from the model."""
        if self.oracle and expected.service is not None:
            reach = self.target.reachability(name, self.port, CLIENTS[0])  # type: ignore[attr-defined]
            why = reachability_mismatch(expected.usable, reach, expected.drops, expected.opted_out)
            return None if why is None else Mismatch(why, (why,))
        return None
