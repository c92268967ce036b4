"""`source-ip` and `hairpin` (invariant I15): what a pod sees of a pod client's connection, and
a pod reaching itself through its own Service.

Upstream's promises (e2e `test/e2e/network/service.go`: "should preserve source pod IP for
traffic thru service cluster IP", "should allow pods to hairpin back to themselves through
services"), and how kube-proxy keeps them (`pkg/proxy/iptables/proxier.go`,
`pkg/proxy/nftables/proxier.go`):

- **source IP.** Each endpoint chain (`KUBE-SEP-*`; nftables `endpoint-*`) marks for
  masquerade only packets whose source is that endpoint's own IP (`-s <podIP> -j
  KUBE-MARK-MASQ`: hairpin); otherwise a packet is masqueraded only when it comes from off the
  cluster (`! -s <clusterCIDR>` with `--cluster-cidr`, or the `LocalDetector`) or when
  `--masquerade-all` is set. So ClusterIP traffic from a pod to *another* pod keeps the client
  pod's IP: the serving pod must see it. Answers from the client pod itself are not judged here
  (their source is the node's, see below), nor connections from the harness's client
  namespaces, which are off the pod network and may be masqueraded.
- **hairpin.** A pod that is a usable endpoint of its own Service reaches itself through the
  VIP: the DNAT sends the packet back out of the interface it came in on, which needs the
  bridge's hairpin mode, and the answer must come back through the node, so kube-proxy
  masquerades it to the node's address; unmasqueraded, the pod receives a packet from its own
  address, drops it as martian, and the connection times out. Every request from the pod must
  be answered while it is usable; one answer from itself at least shows hairpin was exercised.

Pure: functions of one sample sent from a pod and what the model says of the Service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.checks.verdict import Verdict, failed, passed
from harness.model.objects import Backend
from harness.traffic import Outcome

SOURCE_IP = "source-ip"
HAIRPIN = "hairpin"
EVIDENCE_ANSWERS = 16  # answers listed in a verdict's evidence


@dataclass(frozen=True)
class PodClientSample:
    """A few fresh connections from pod `client` (address `address`) to Service `service`, of
    which `client` is a usable endpoint among `usable` (the model's), and their outcomes."""

    service: str
    client: Backend
    address: str
    usable: frozenset[Backend]
    outcomes: tuple[Outcome, ...]

    def evidence(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "client_pod": f"{self.client.pod} {self.client.uid}",
            "client_address": self.address,
            "usable": sorted(f"{b.pod} {b.uid}" for b in self.usable),
            "answers": [_answer(o) for o in self.outcomes[:EVIDENCE_ANSWERS]],
        }


def _answer(outcome: Outcome) -> dict[str, Any]:
    if outcome.backend is None:
        return {"error": outcome.error.value if outcome.error else "none"}
    return {"backend": f"{outcome.backend.pod} {outcome.backend.uid}", "seen": outcome.seen_source}


def check_source_ip(sample: PodClientSample) -> Verdict | None:
    """Every answer from a pod other than the client names the client pod's own address as the
    connection's source. None (not judged) when no such answer reports what it saw."""
    judged = [
        o
        for o in sample.outcomes
        if o.backend is not None and o.backend != sample.client and o.seen_source is not None
    ]
    if not judged:
        return None
    wrong = sorted({str(o.seen_source) for o in judged if o.seen_source != sample.address})
    evidence = sample.evidence()
    if wrong:
        return failed(
            SOURCE_IP,
            f"pod {sample.client.pod} ({sample.address}) reached other pods through Service"
            f" {sample.service}, which saw its connections come from {', '.join(wrong)}: the"
            " source IP was not preserved (kube-proxy masquerades only hairpin and off-cluster"
            " traffic)",
            **evidence,
        )
    return passed(
        SOURCE_IP,
        f"{len(judged)} answer(s) from other pods saw the client pod's own address",
        **evidence,
    )


def check_hairpin(sample: PodClientSample) -> Verdict | None:
    """Every request from a pod that is a usable endpoint of the Service is answered. None (not
    judged) when none failed and none was answered by the client pod itself (hairpin was not
    exercised)."""
    failures = [o for o in sample.outcomes if o.backend is None]
    itself = [o for o in sample.outcomes if o.backend == sample.client]
    if not failures and not itself:
        return None
    evidence = sample.evidence()
    if failures:
        kinds = sorted({o.error.value for o in failures if o.error is not None})
        return failed(
            HAIRPIN,
            f"{len(failures)} of {len(sample.outcomes)} request(s) from pod {sample.client.pod}"
            f" through its own Service {sample.service} failed ({', '.join(kinds)}) while it"
            f" and {len(sample.usable) - 1} other endpoint(s) were usable: a pod must reach"
            " itself through its Service (hairpin, masqueraded to the node)",
            **evidence,
        )
    return passed(
        HAIRPIN,
        f"pod {sample.client.pod} reached itself {len(itself)} time(s) through its Service",
        **evidence,
    )


def check_pod_client(sample: PodClientSample, judged: Sequence[str]) -> list[Verdict]:
    """The verdicts of the properties in `judged` (of `SOURCE_IP`, `HAIRPIN`) on one sample."""
    checks = {SOURCE_IP: check_source_ip, HAIRPIN: check_hairpin}
    found = (checks[name](sample) for name in judged if name in checks)
    return [verdict for verdict in found if verdict is not None]
