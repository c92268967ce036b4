"""Property `affinity`: ClientIP session affinity (I12).

Upstream `checkAffinity` passes when the last `AffinityConfirmCount` (15) responses to one client
came from one host. Here, across the whole run: while a client's backend stays usable and the
affinity timeout has not passed since its last connection, every new connection from that client
reaches that same backend; when the backend stops being usable the client must move to a usable
one (checked by `no-stale-traffic` and `availability`). After the timeout it may move.

Affinity to a backend ends when the backend stops being usable, even if it comes back later:
kube-proxy keeps affinity state per endpoint and deletes it with the endpoint's rules (the
iptables `recent` list of its KUBE-SEP chain, the nftables affinity set, the userspace proxy's
`removeSessionAffinityByEndpoint`), so a returning endpoint is a fresh choice for every client.

`AffinityMemory` is the checker's own record of which backend each (Service, client) stuck to,
rebuilt from the observations alone; the runner forgets a Service's entries when its affinity
settings change (e2e `...WithTransition`: ClientIP -> None -> ClientIP may pick anew).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from harness.checks.verdict import Verdict, failed, passed
from harness.model.objects import Affinity, Backend, Service
from harness.traffic import TrafficSample

PROPERTY = "affinity"
TIMEOUT_SLACK_S = 0.5  # the kernel's recent/set timers are refreshed per packet, not per batch


@dataclass
class Stuck:
    backend: Backend
    last_used_s: float


@dataclass
class AffinityMemory:
    """Which backend each (Service, client) is stuck to, and when it last connected."""

    entries: dict[tuple[str, str], Stuck] = field(default_factory=dict)

    def forget(self, service: str, keep: Collection[Backend] = ()) -> None:
        """Forget the clients of `service`, except those stuck to a backend in `keep`."""
        for key, stuck in list(self.entries.items()):
            if key[0] == service and stuck.backend not in keep:
                del self.entries[key]


def check_affinity(
    service: Service,
    usable: Collection[Backend],
    sample: TrafficSample,
    memory: AffinityMemory,
) -> Verdict:
    """Check one sample from one client against the memory, then update the memory."""
    if service.session_affinity != Affinity.CLIENT_IP:
        return passed(PROPERTY, f"{service.name}: no session affinity; not applicable")
    key = (service.name, sample.request.client)
    backends = [o.backend for o in sample.outcomes if o.backend is not None]
    if not backends:
        return passed(PROPERTY, f"{service.name}: no answered request to judge")
    previous = memory.entries.get(key)
    idle_s = sample.started_s - previous.last_used_s if previous else None
    must_stay = (
        previous is not None
        and idle_s is not None
        and previous.backend in usable
        and idle_s < service.affinity_timeout_s - TIMEOUT_SLACK_S
    )
    expected = previous.backend if must_stay and previous else backends[0]
    moved = [b for b in backends if b != expected]
    memory.entries[key] = Stuck(backends[-1], sample.finished_s)
    if not moved:
        return passed(
            PROPERTY,
            f"{service.name}: {len(backends)} connection(s) from {key[1]} all reached {expected}",
        )
    within_batch = sample.finished_s - sample.started_s < service.affinity_timeout_s
    if not must_stay and not within_batch:
        return passed(PROPERTY, f"{service.name}: moved after the affinity timeout, as allowed")
    reason = (
        f"it had stuck to {expected} {idle_s:.1f}s earlier (timeout {service.affinity_timeout_s}s)"
        if must_stay and idle_s is not None
        else "within one batch"
    )
    return failed(
        PROPERTY,
        f"{service.name}: ClientIP affinity broken for {key[1]}: connections reached"
        f" {', '.join(sorted({str(b) for b in moved}))} although {reason}",
        service=service.name,
        client=key[1],
        expected=str(expected),
        sequence=[str(b) for b in backends[:40]],
    )
