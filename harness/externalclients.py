"""NodePort traffic from outside: after a step, a few fresh connections from the external client
to every node's own address on the node port of each changed NodePort or LoadBalancer Service,
judged against that node's `expect_external` (`harness.checks.external`, `node-port`; I4, I10).

After a step whose state the proxies say is final and in which nothing failed (as
`harness.nodeclients`: this must single out what only traffic from outside shows),
`ExternalClients.after` sends `REQUESTS` fresh connections at once from the external client
(`TrafficRequest.external_node`) to each node's node port of the first port of every
NodePort/LoadBalancer Service whose external expectation changed for some node (every such
Service after a proxy restart or stale snapshot), at most `MAX_SERVICES` of them (in name
order, rotated by the step so a replay picks the same). A connection that must be dropped or
refused gets `EMPTY_TIMEOUT_S`, one that must connect the run's request timeout.

Not judged: a Service with an opt-out label (its node port is not programmed at all, so the
node's own stack answers it, which the model does not say), a UDP port where it must not connect
(as `harness.nodeclients`), and pod or node traffic to a node port (implementation-defined,
issue 11 item 3).

Only on targets with an external client and a proxy on more than one node (`external_nodes`:
the model, the local cluster with `--nodes` 2 or more); elsewhere `node-port` is not applicable
and its coverage states are uncheckable.
"""

from __future__ import annotations

from typing import Any

from harness.checks.external import ExternalSample, check_node_port
from harness.checks.nodes import CONNECT, DROP
from harness.checks.verdict import Verdict
from harness.events import NEMESIS_EVENTS, Event
from harness.model.endpoints import expect_external
from harness.model.objects import Protocol, TrafficPolicy, opt_out_label
from harness.model.state import ClusterState
from harness.nodeclients import host_nodes
from harness.targets.base import Target
from harness.traffic import TrafficRequest

PORT = "http"
REACHED = "node-port-reached"
LOCAL_DROPS = "external-local-no-local-endpoints"
FEATURES = frozenset({REACHED, LOCAL_DROPS})
REQUESTS = 4
MAX_SERVICES = 2
EMPTY_TIMEOUT_S = 0.5


def external_nodes(target: object) -> tuple[str, ...]:
    """The nodes whose node ports `target` sends to from outside: its `host_nodes` when it has
    an external client (an `external_address` attribute); none otherwise."""
    return host_nodes(target) if hasattr(target, "external_address") else ()


def unavailable(target: object) -> str | None:
    """Why `node-port` cannot run on `target` (None: it can)."""
    if external_nodes(target):
        return None
    return (
        "the target has no external client on the nodes' network (a local cluster with --nodes"
        " 2 or more, or the model)"
    )


def uncheckable(target: object) -> frozenset[str]:
    """The coverage states never checked on `target`."""
    return frozenset() if external_nodes(target) else FEATURES


def judged_services(
    event: Event, before: ClusterState, after: ClusterState, nodes: tuple[str, ...]
) -> list[str]:
    """NodePort and LoadBalancer Services, without an opt-out label, with the port `PORT`,
    whose external expectation changed for any of `nodes` (all of them after a nemesis
    event). Pure."""
    names = []
    for name, service in sorted(after.services.items()):
        if not service.type.external or opt_out_label(service) is not None:
            continue
        if all(p.name != PORT for p in service.ports):
            continue
        if isinstance(event, NEMESIS_EVENTS) or any(
            expect_external(before, name, PORT, n) != expect_external(after, name, PORT, n)
            for n in nodes
        ):
            names.append(name)
    return names


class ExternalClients:
    """One sample per node and changed external Service per step (module docstring). Holds
    nothing between steps."""

    def __init__(self, target: Target, timeout_s: float) -> None:
        self.target = target
        self.nodes = external_nodes(target)
        self.timeout_s = timeout_s

    def after(
        self,
        step: int,
        event: Event,
        before: ClusterState,
        after: ClusterState,
        record: dict[str, Any],
    ) -> tuple[list[Verdict], frozenset[str], frozenset[str]]:
        """Send the samples after step `step` and judge them: the verdicts and the coverage
        features reached and checked. Nothing on a target without an external client or when
        no external Service changed."""
        if not self.nodes:
            return [], frozenset(), frozenset()
        changed = judged_services(event, before, after, self.nodes)
        if len(changed) > MAX_SERVICES:
            start = step % len(changed)
            changed = (changed[start:] + changed[:start])[:MAX_SERVICES]
        samples = [
            sample
            for service in changed
            for node in self.nodes
            if (sample := self._sample(after, service, node)) is not None
        ]
        verdict = check_node_port(samples)
        if verdict is None:
            return [], frozenset(), frozenset()
        record["node_port"] = verdict.evidence["samples"]
        features = set()
        if any(s.outcome == CONNECT for s in samples):
            features.add(REACHED)
        if any(s.keeps_source and s.outcome == DROP for s in samples):
            features.add(LOCAL_DROPS)
        return [verdict], frozenset(features), frozenset(features)

    def _sample(self, state: ClusterState, service: str, node: str) -> ExternalSample | None:
        """A sample from outside at `node`'s node port, or None for one that cannot be judged
        (a UDP port that must not connect there: module docstring)."""
        expected = expect_external(state, service, PORT, node)
        found = state.services[service]
        udp = any(p.name == PORT and p.protocol == Protocol.UDP.value for p in found.ports)
        if udp and not expected.usable:
            return None
        request = TrafficRequest(
            service=service,
            count=REQUESTS,
            timeout_s=self.timeout_s if expected.usable else EMPTY_TIMEOUT_S,
            parallel=True,
            external_node=node,
        )
        outcomes = self.target.send(request).outcomes
        return ExternalSample(
            service,
            node,
            expected,
            outcomes,
            client_address=str(getattr(self.target, "external_address", "") or ""),
            keeps_source=found.external_traffic_policy == TrafficPolicy.LOCAL,
        )
