"""`exact-balance`'s named part `node-port`: every node's node port of a NodePort or LoadBalancer
Service, traced through the rules that node's own proxy programmed (issue 11, item 7: the rule
oracle extended to KUBE-NODEPORTS, KUBE-EXT-* and the nftables `service-nodeports` map).

After a Service's wait, on a target that can trace a node port (`traces_node_ports`: the local
cluster whose proxy reads its rules back, `KernelRuleProxy.node_port_reachability`), a new
connection from the external client to each node's own address on the node port of the
Service's first port is traced on that node, and judged as the ClusterIP trace is
(`harness.checks.rules.reachability_mismatch`) against the model's `expect_external` for that
node: exactly its usable endpoints, each with probability 1/n, or DROP (externalTrafficPolicy
Local, none here), or REJECT (no endpoints); an opted-out Service's node port translates and
rejects nothing. Deterministic and traffic-free, so every settled step of every example can
afford it, and a node-port bug shows at the first step that exposes it, not only when
`node-port`'s few connections happen to land on it.

Reads rules only; sends nothing; changes nothing.
"""

from __future__ import annotations

from harness.checks.rules import check_exact_balance
from harness.checks.verdict import Verdict
from harness.externalclients import external_nodes
from harness.model.endpoints import expect_external
from harness.model.state import ClusterState

PART = "node-port"


def traces_node_ports(target: object) -> bool:
    """Whether `target` can trace its node ports: it has `node_port_reachability` and
    external nodes, and its proxy reads its rules back (`reads_rules`)."""
    return (
        callable(getattr(target, "node_port_reachability", None))
        and bool(getattr(target, "reads_rules", False))
        and bool(external_nodes(target))
    )


def node_port_balance(
    target: object, state: ClusterState, service: str, port: str
) -> list[Verdict]:
    """One `exact-balance` verdict per node for `service`'s port `port` at that node's node
    port (evidence `part: node-port` and the node), none when the target cannot trace node ports
    or the port has none (a ClusterIP Service, a deleted one)."""
    found = state.services.get(service)
    if found is None or not found.type.external or not traces_node_ports(target):
        return []
    if next((p.node_port for p in found.ports if p.name == port), None) is None:
        return []
    verdicts = []
    for node in external_nodes(target):
        expected = expect_external(state, service, port, node)
        reach = target.node_port_reachability(service, port, node)  # type: ignore[attr-defined]
        label = f"{service} at {node}'s node port"
        verdict = check_exact_balance(
            label, expected.usable, reach, expected.drops, expected.opted_out
        )
        evidence = {**verdict.evidence, "part": PART, "node": node}
        verdicts.append(Verdict(verdict.property, verdict.holds, verdict.message, evidence))
    return verdicts
