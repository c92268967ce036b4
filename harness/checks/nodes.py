"""`every-node`: every node's proxy serves a Service as the model says that node must (I4, I10).

Each node runs its own proxy, which programs the Service for that node alone: kube-proxy's
`CategorizeEndpoints` (`pkg/proxy/topology.go`) filters the endpoints by the node it runs on
(`nodeName`) for internalTrafficPolicy Local (KEP-2086; e2e "should respect internalTrafficPolicy=
Local Pod to Pod", "... Pod (hostNetwork: true) to Pod"), and `hasAnyEndpoints` decides between
REJECT (no endpoint anywhere: `KUBE-SVC-*` absent, the filter chain REJECTs) and DROP (endpoints
only on other nodes: the Local chain has no rule and the packet is dropped,
`pkg/proxy/iptables/proxier.go` "has no local endpoints"). So what a client sees depends on the
node whose proxy its connection goes through: a connection from node k's host network (a
hostNetwork pod, the kubelet) must reach only the destinations usable from node k, must be
dropped when node k has none but others do under Local policy, and refused when there is none
at all. A proxy told the wrong node, or one that programs every node alike, is right on one node
and wrong on the others; judged from node-1 alone (where the harness's clients are) it passes.

Pure: a function of the model's expectation per node and what a few fresh connections from each
node's host network saw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.checks.verdict import Verdict, failed, passed
from harness.model.endpoints import Expectation
from harness.traffic import ErrorKind, Outcome

PROPERTY = "every-node"
CONNECT, DROP, REJECT = "connect", "drop", "reject"


@dataclass(frozen=True)
class NodeSample:
    """Fresh connections from `node`'s host network to `service`, and the model's expectation
    for that node (`expect(state, service, port, node=node)`)."""

    service: str
    node: str
    expected: Expectation
    outcomes: tuple[Outcome, ...]

    @property
    def outcome(self) -> str:
        """What every new connection from this node must do: connect, drop or reject."""
        if self.expected.usable:
            return CONNECT
        return DROP if self.expected.drops else REJECT

    def wrong(self) -> list[str]:
        """One line per connection that did not do what the node's expectation says."""
        usable = self.expected.usable
        lines = []
        for outcome in self.outcomes:
            seen = _seen(outcome)
            if self.outcome == CONNECT:
                ok = outcome.backend in usable
            elif self.outcome == DROP:
                ok = outcome.backend is None and outcome.error == ErrorKind.TIMEOUT
            else:
                ok = outcome.backend is None and outcome.error == ErrorKind.REFUSED
            if not ok:
                lines.append(seen)
        return lines

    def evidence(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "node": self.node,
            "expected": self.outcome,
            "usable": sorted(f"{b.pod} {b.uid}" for b in self.expected.usable),
            "seen": dict(sorted(Counter(_seen(o) for o in self.outcomes).items())),
        }


def _seen(outcome: Outcome) -> str:
    if outcome.backend is not None:
        return f"{outcome.backend.pod} {outcome.backend.uid}"
    return outcome.error.value if outcome.error else "none"


def check_every_node(
    samples: Sequence[NodeSample], prop: str = PROPERTY, route: str = "from {node}'s host network"
) -> Verdict | None:
    """One verdict over the samples of one step (None without any): it holds when every
    connection from every node did what that node's expectation says (connect to a destination
    usable from that node; time out when the node drops; be refused when it rejects). The
    evidence lists every sample; the message names the first wrong node. `prop` names the
    verdict and `route` (formatted with `node`) where the connections came from (another
    property may judge its own node samples this way: `harness.checks.external`)."""
    if not samples:
        return None
    evidence = {"samples": [s.evidence() for s in samples]}
    for sample in samples:
        wrong = sample.wrong()
        if wrong:
            usable = ", ".join(sorted(b.pod for b in sample.expected.usable)) or "none"
            return failed(
                prop,
                f"{sample.service} {route.format(node=sample.node)}: {len(wrong)} of"
                f" {len(sample.outcomes)} new connections got {', '.join(sorted(set(wrong)))};"
                f" the model says they must {sample.outcome} (usable from {sample.node}:"
                f" {usable})",
                **evidence,
            )
    nodes = sorted({s.node for s in samples})
    services = sorted({s.service for s in samples})
    return passed(
        prop,
        f"{', '.join(services)}: every node ({', '.join(nodes)}) as the model says",
        **evidence,
    )
