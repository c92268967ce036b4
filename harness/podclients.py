"""Pods as clients: after every step, one pod sends a few requests through its own Service, the
observations `source-ip` and `hairpin` judge (`harness.checks.sources`, invariant I15).

After a step whose state the proxy says is final, `PodClients.after` picks one Service with
usable endpoints and one of its usable endpoints as the client (both in turn, by the step
number, so a replay picks the same), and sends `requests_for(n)` fresh connections at once from
inside that pod (`TrafficRequest.client_pod`) to the Service's VIP. Each answer names the pod
that served it and the source address that pod saw (`Outcome.seen_source`): answers from other
pods judge `source-ip`, answers from the client itself (and any failure) judge `hairpin`. The
batch costs one request timeout at most, also when hairpin traffic is dropped.

A pod's traffic goes through its own node's proxy (`via_node`: the pod's node where the target
has a proxy there, `node_names`; node-1's otherwise, as on the model and a one-node local
cluster), so the model's expectation is that node's: a client is an endpoint usable from its
own node, and the sample is judged against what its node may reach (internalTrafficPolicy
Local, topology).

Only on targets that send from pods (`targets.base.sends_from_pods`: the model, the local
cluster), and only for the properties whose conformance feature the implementation declares
(`targets.base.target_features`): a proxy that relays connections through its own process
(userspace, nginx, haproxy) shows the pods its own address, declares no `source-ip`, and is
never judged on it.
"""

from __future__ import annotations

from typing import Any

from harness.checks.sources import HAIRPIN, SOURCE_IP, PodClientSample, check_pod_client
from harness.checks.verdict import Verdict
from harness.model.endpoints import expect
from harness.model.objects import PROXY_NODE, Backend, Pod
from harness.model.state import ClusterState
from harness.targets.base import Target, sends_from_pods, target_features
from harness.traffic import TrafficRequest

PORT = "http"
HAIRPIN_FEATURE = "hairpin"
SOURCE_FEATURE = "source-ip-checked"
MIN_REQUESTS = 4
PER_ENDPOINT = 3
MAX_REQUESTS = 16
FEATURE_OF = {HAIRPIN: "hairpin", SOURCE_IP: "source-ip"}  # property -> conformance feature
STATE_OF = {HAIRPIN: HAIRPIN_FEATURE, SOURCE_IP: SOURCE_FEATURE}  # property -> coverage state


def requests_for(usable: int) -> int:
    """Requests per sample with `usable` endpoints: 3 per endpoint (4 to 16), so under uniform
    balancing the client reaches itself with probability 1 - (1 - 1/n)^k at least 0.95 up to
    5 endpoints (0.81 at 10), and another pod with probability at least 0.98 from 2 on."""
    return min(MAX_REQUESTS, max(MIN_REQUESTS, PER_ENDPOINT * usable))


def via_node(target: object, pod: Pod) -> str:
    """The node whose proxy `pod`'s traffic goes through on `target`: the pod's own when the
    target runs a proxy there (`node_names`), else node-1's."""
    nodes = getattr(target, "node_names", (PROXY_NODE,))
    return pod.node if pod.node in nodes else PROXY_NODE


def judged_properties(target: object) -> tuple[str, ...]:
    """The properties pod clients judge on `target` (opened): none unless it sends from pods,
    else those whose conformance feature it declares."""
    if not sends_from_pods(target):
        return ()
    supported, _ = target_features(target)
    return tuple(p for p, f in FEATURE_OF.items() if f in supported)


def uncheckable(target: object) -> frozenset[str]:
    """The coverage states pod clients never check on `target` (opened): those of the
    properties it is not judged on."""
    judged = judged_properties(target)
    return frozenset(state for prop, state in STATE_OF.items() if prop not in judged)


class PodClients:
    """One pod-client sample per step (module docstring). Holds no state between steps but the
    properties it judges, read from the target's declaration on first use."""

    def __init__(self, target: Target, timeout_s: float) -> None:
        self.target = target if sends_from_pods(target) else None
        self.timeout_s = timeout_s
        self._judged: tuple[str, ...] | None = None

    def judged(self) -> tuple[str, ...]:
        """The properties judged here that the implementation declares (after `open`)."""
        if self._judged is None:
            self._judged = judged_properties(self.target)
        return self._judged

    def after(
        self, step: int, after: ClusterState, record: dict[str, Any]
    ) -> tuple[list[Verdict], frozenset[str], frozenset[str]]:
        """Send one sample after step `step` and judge it: the verdicts, and the coverage
        features reached (a sample was sent) and checked (a verdict was reached). Nothing when
        no Service has a usable endpoint or the target cannot send from pods."""
        if self.target is None or not self.judged():
            return [], frozenset(), frozenset()
        sample = self._sample(step, after)
        if sample is None:
            return [], frozenset(), frozenset()
        verdicts = check_pod_client(sample, self.judged())
        record["pod_client"] = sample.evidence()
        reached = {HAIRPIN_FEATURE} | ({SOURCE_FEATURE} if len(sample.usable) > 1 else set())
        checked = {STATE_OF[v.property] for v in verdicts}
        return verdicts, frozenset(reached), frozenset(checked)

    def _sample(self, step: int, after: ClusterState) -> PodClientSample | None:
        assert self.target is not None
        candidates = [
            (name, clients)
            for name in sorted(after.services)
            if (clients := self._clients(after, name))
        ]
        if not candidates:
            return None
        service, clients = candidates[step % len(candidates)]
        client = clients[(step // len(candidates)) % len(clients)]
        pod = after.pods.get(client.pod)
        if pod is None or pod.ip is None:
            return None
        usable = expect(after, service, PORT, via_node(self.target, pod)).usable
        request = TrafficRequest(
            service=service,
            count=requests_for(len(usable)),
            timeout_s=self.timeout_s,
            parallel=True,
            client_pod=client.pod,
        )
        outcomes = self.target.send(request).outcomes
        return PodClientSample(service, client, pod.ip, frozenset(usable), outcomes)

    def _clients(self, after: ClusterState, service: str) -> list[Backend]:
        """The Service's endpoints usable from their own pod's node (`via_node`), sorted."""
        nodes = getattr(self.target, "node_names", (PROXY_NODE,))
        usable_from = {node: expect(after, service, PORT, node).usable for node in nodes}
        return sorted(
            backend
            for backend in frozenset[Backend]().union(*usable_from.values())
            if (pod := after.pods.get(backend.pod)) is not None
            and backend in usable_from[via_node(self.target, pod)]
        )
