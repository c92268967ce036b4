"""Property `affinity`: ClientIP session affinity (I12).

Upstream `checkAffinity` passes when the last `AffinityConfirmCount` (15) responses to one client
came from one host, and `execAffinityTestForSessionAffinityTimeout` requires a client to reach a
different host after the timeout. Here, across the whole run, for every client address:

- **Stickiness.** While a client's backend stays usable and less than the affinity timeout
  (minus `TIMEOUT_SLACK_S`) has passed since its last connection, every new connection from that
  client reaches that same backend. When the backend stops being usable the client must move to a
  usable one (checked by `no-stale-traffic` and `availability`).
- **Expiry.** After the timeout (plus `TIMEOUT_SLACK_S`) without traffic, a client's next fresh
  connection is a fresh choice. One client that returns to its old backend proves nothing (a fresh
  choice lands there with probability 1/n), so the check is made over many idle clients at once
  (the client's further source addresses, a `probe` with `many_clients`): it fails when every one
  of k idle clients lands on its old backend again, with k from
  `harness.checks.confidence.expiry_clients`, which states its false-alarm rate and its power.

Affinity to a backend ends when the backend stops being usable, even if it comes back later:
kube-proxy keeps affinity state per endpoint and deletes it with the endpoint's rules (the
iptables `recent` list of its KUBE-SEP chain, the nftables affinity set, the userspace proxy's
`removeSessionAffinityByEndpoint`), so a returning endpoint is a fresh choice for every client.

`AffinityMemory` is the checker's own record of which backend each (Service, client address)
stuck to and when it last connected, rebuilt from the observations alone; the runner forgets a
Service's entries when its affinity settings change (e2e `...WithTransition`: ClientIP -> None ->
ClientIP may pick anew). Times are bounds: a connection of a batch happened somewhere between the
batch's start and its end, and every judgement takes the bound that favours the proxy.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from harness.checks.confidence import AlarmBudget, all_stay_chance, expiry_clients
from harness.checks.verdict import Verdict, failed, passed
from harness.model.objects import Affinity, Backend, Service
from harness.traffic import Outcome, TrafficSample

PROPERTY = "affinity"
TIMEOUT_SLACK_S = 0.25
"""Allowance on both sides of `timeoutSeconds` for the kernel's timers, which count in jiffies
(a few milliseconds). Time on the harness's side needs none: idle times are bounded from the
batches' start and end, each bound taken in the proxy's favour."""


@dataclass
class Stuck:
    """A client's backend and the bounds of its last connection's time."""

    backend: Backend
    first_s: float
    last_s: float


@dataclass
class AffinityMemory:
    """Which backend each (Service, client address) is stuck to, and when it last connected;
    `orphans` are the clients whose backend stopped being usable (until they connect again)."""

    entries: dict[tuple[str, str], Stuck] = field(default_factory=dict)
    orphans: set[tuple[str, str]] = field(default_factory=set)

    def forget(self, service: str, keep: Collection[Backend] | None = None) -> None:
        """Forget the clients of `service` whose backend is not in `keep` (they become orphans:
        their backend was removed), or all of them, as strangers, when `keep` is None (the
        Service's affinity settings changed)."""
        for key, stuck in list(self.entries.items()):
            if key[0] != service:
                continue
            if keep is None:
                del self.entries[key]
            elif stuck.backend not in keep:
                del self.entries[key]
                self.orphans.add(key)
        if keep is None:
            self.orphans = {key for key in self.orphans if key[0] != service}


def client_key(client: str, source: int) -> str:
    """The name of one client address: the client itself, or `client#N` for its N-th further
    source address."""
    return client if source == 0 else f"{client}#{source}"


@dataclass
class _Judged:
    """What one client address did in a sample, judged against the memory."""

    client: str
    backends: list[Backend]
    expected: Backend
    must_stay: bool
    expired_from: Backend | None  # its old, still usable backend, when its idle time ran out
    idle_s: float | None
    orphaned: bool  # its backend had stopped being usable since its last connection


def _judge_clients(
    service: Service, usable: Collection[Backend], sample: TrafficSample, memory: AffinityMemory
) -> list[_Judged]:
    by_source: dict[int, list[Outcome]] = {}
    for outcome in sample.outcomes:
        by_source.setdefault(outcome.source, []).append(outcome)
    judged = []
    timeout_s = service.affinity_timeout_s
    for source, outcomes in sorted(by_source.items()):
        backends = [o.backend for o in outcomes if o.backend is not None]
        if not backends:
            continue
        client = client_key(sample.request.client, source)
        previous = memory.entries.get((service.name, client))
        orphaned = (service.name, client) in memory.orphans
        memory.orphans.discard((service.name, client))
        still_usable = previous is not None and previous.backend in usable
        idle_most = sample.finished_s - previous.first_s if previous else None
        idle_least = sample.started_s - previous.last_s if previous else None
        must_stay = (
            still_usable and idle_most is not None and idle_most < timeout_s - TIMEOUT_SLACK_S
        )
        expired = (
            still_usable and idle_least is not None and idle_least >= timeout_s + TIMEOUT_SLACK_S
        )
        expected = previous.backend if must_stay and previous else backends[0]
        judged.append(
            _Judged(
                client,
                backends,
                expected,
                must_stay,
                previous.backend if expired and previous else None,
                idle_least,
                orphaned,
            )
        )
        memory.entries[(service.name, client)] = Stuck(
            backends[-1], sample.started_s, sample.finished_s
        )
    return judged


def check_affinity(
    service: Service,
    usable: Collection[Backend],
    sample: TrafficSample,
    memory: AffinityMemory,
    budget: AlarmBudget,
) -> Verdict:
    """Check one sample (from one or many addresses of a client) against the memory, then
    update the memory. Stickiness is judged per address; expiry over the addresses that were
    idle past the timeout while their backend stayed usable."""
    if service.session_affinity != Affinity.CLIENT_IP:
        return passed(PROPERTY, f"{service.name}: no session affinity; not applicable")
    judged = _judge_clients(service, usable, sample, memory)
    if not judged:
        return passed(PROPERTY, f"{service.name}: no answered request to judge")
    batch_s = sample.finished_s - sample.started_s
    for client in judged:
        moved = [b for b in client.backends if b != client.expected]
        within_batch = batch_s < service.affinity_timeout_s - TIMEOUT_SLACK_S
        if moved and (client.must_stay or within_batch):
            reason = (
                f"it had stuck to {client.expected} less than"
                f" {service.affinity_timeout_s - TIMEOUT_SLACK_S:g}s earlier"
                f" (timeout {service.affinity_timeout_s}s)"
                if client.must_stay
                else "within one batch"
            )
            return failed(
                PROPERTY,
                f"{service.name}: ClientIP affinity broken for {client.client}: connections"
                f" reached {', '.join(sorted({str(b) for b in moved}))} although {reason}",
                service=service.name,
                client=client.client,
                expected=str(client.expected),
                sequence=[str(b) for b in client.backends[:40]],
            )
    orphans = sum(1 for c in judged if c.orphaned)
    return _check_expiry(service, usable, judged, budget, orphans)


def _check_expiry(
    service: Service,
    usable: Collection[Backend],
    judged: list[_Judged],
    budget: AlarmBudget,
    orphans: int,
) -> Verdict:
    idle = [c for c in judged if c.expired_from is not None]
    if not idle:
        return passed(
            PROPERTY,
            f"{service.name}: {len(judged)} client address(es) kept their backends",
            returned_orphans=orphans,
        )
    n = len(usable)
    needed = expiry_clients(n, budget.per_check)
    stayed = sum(1 for c in idle if c.backends[0] == c.expired_from)
    evidence: dict[str, object] = {
        "returned_orphans": orphans,
        "idle_clients": len(idle),
        "stayed": stayed,
        "endpoints": n,
        "needed": needed,
        "timeout_s": service.affinity_timeout_s,
        "slack_s": TIMEOUT_SLACK_S,
        "alpha": budget.per_check,
    }
    if needed is None or len(idle) < needed:
        why = "one endpoint" if needed is None else f"{len(idle)} idle client(s) < {needed} needed"
        evidence["expiry_judged"] = False
        return passed(PROPERTY, f"{service.name}: expiry not judged ({why} at n={n})", **evidence)
    chance = all_stay_chance(len(idle), n)
    evidence.update(expiry_judged=True, false_alarm_chance=chance)
    if stayed == len(idle):
        return failed(
            PROPERTY,
            f"{service.name}: ClientIP affinity never expires: all {len(idle)} clients idle for"
            f" over {service.affinity_timeout_s}s (+{TIMEOUT_SLACK_S:g}s) came back to their old"
            f" backend (chance {chance:.1e} for a fresh choice over {n} endpoints)",
            service=service.name,
            **evidence,
        )
    return passed(
        PROPERTY,
        f"{service.name}: affinity expired: {len(idle) - stayed} of {len(idle)} idle clients"
        " chose anew",
        **evidence,
    )
