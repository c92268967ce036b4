"""A pod's traffic to its own node's node port: recorded, not judged (issue 11, item 3).

What a NodePort connection from a pod to the address of the node it runs on gets is
implementation-defined: kube-proxy's iptables mode sends such traffic under
externalTrafficPolicy Local to any endpoint (its `KUBE-EXT-*` chain's rule for pod traffic, the
cluster-CIDR detector, ahead of the Local filter), the harness's own proxies leave that rule out
and DROP it on a node without local endpoints, others may do either, and none of that is a
Service's promise. The harness still shows what happened, as the e2e suite logs what it cannot
assert.

After a step in which `node-port` judged a Service (`ExternalClients`), `PodNodePorts.record`
sends one fresh connection from a pod on each node, the first by name that runs there, to that
node's own address at the Service's node port (`TrafficRequest.to_node_port`), for the first
judged Service only, and keeps who answered (or the error) in the step's record under
`node_port_from_pods`. It yields no verdict and no coverage state, and never fails a step.
Only on targets that `records_pod_node_ports` (the local cluster with 2 nodes or more);
bounded: one connection per node a step, each `TIMEOUT_S`.
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.model.state import ClusterState
from harness.targets.base import Target
from harness.traffic import TrafficRequest

RECORD_KEY = "node_port_from_pods"
PORT = "http"
TIMEOUT_S = 0.25
"""Each pod's one connection is given this long: on the nodes' own network an answer takes
milliseconds, and a dropped one costs no more than this a node."""


def records(target: object) -> bool:
    """Whether `target` can send from a pod to a node's node port (`records_pod_node_ports`)."""
    return bool(getattr(target, "records_pod_node_ports", False))


def client_pods(state: ClusterState, nodes: tuple[str, ...]) -> dict[str, str]:
    """The pod each node sends from: the first by name that runs there, ready or not (a pod's
    readiness says nothing of its network). Pure."""
    chosen: dict[str, str] = {}
    for pod in sorted(state.pods.values(), key=lambda p: p.name):
        if pod.node in nodes and pod.ip and not pod.phase.terminal and pod.node not in chosen:
            chosen[pod.node] = pod.name
    return chosen


class PodNodePorts:
    """Records, per step, what a pod on each node got from its node's node port (module
    docstring). Holds nothing between steps."""

    def __init__(
        self, target: Target, nodes: tuple[str, ...], timeout_s: float = TIMEOUT_S
    ) -> None:
        self.target = target
        self.nodes = nodes if records(target) else ()
        self.timeout_s = timeout_s

    def record(self, state: ClusterState, services: list[str], record: dict[str, Any]) -> None:
        """Send and record for the first of `services` (those `node-port` judged this step);
        nothing without one, or on a target that cannot."""
        if not self.nodes or not services:
            return
        service = services[0]
        seen = []
        for node, pod in sorted(client_pods(state, self.nodes).items()):
            request = TrafficRequest(
                service,
                count=1,
                port=PORT,
                timeout_s=self.timeout_s,
                client_pod=pod,
                to_node_port=node,
            )
            entry: dict[str, Any] = {"service": service, "node": node, "pod": pod}
            try:
                outcomes = self.target.send(request).outcomes
            except HarnessError as problem:  # recorded, never a failed step
                seen.append({**entry, "answered_by": None, "error": str(problem)})
                continue
            outcome = outcomes[0] if outcomes else None
            answered = outcome.backend if outcome is not None else None
            error = outcome.error if outcome is not None else None
            seen.append(
                {
                    **entry,
                    "answered_by": str(answered) if answered else None,
                    "error": str(error) if error else None,
                }
            )
        record[RECORD_KEY] = seen
