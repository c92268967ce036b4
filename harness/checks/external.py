"""`node-port`: a NodePort (or LoadBalancer) Service reached from outside the cluster at every
node's own address on its node port, each node judged by its own proxy (I4, I10; issue 11 items
2-3).

kube-proxy programs node ports on every node (`pkg/proxy/iptables/proxier.go: syncProxyRules`,
KUBE-NODEPORTS and KUBE-EXT-<hash>; `pkg/proxy/nftables/proxier.go`, the `service-nodeports`
map and `external-` chains). Under externalTrafficPolicy Cluster a connection arriving at any
node reaches any usable endpoint, masqueraded (the pod may see a node's address); under Local it
reaches only that node's endpoints (`CategorizeEndpoints`' local ones, with the local
terminating fallback), unmasqueraded, so the pod sees the client's own address (e2e "should
preserve source IP for traffic ... externalTrafficPolicy=Local"), and a node without any drops
it (`externalTrafficFilterTarget` DROP, "has no local endpoints"); a Service without endpoints
rejects it (KUBE-EXTERNAL-SERVICES REJECT). The model says which for each node
(`harness.model.endpoints.expect_external`).

A UDP node port is judged alike, one fresh flow (a new source port) per datagram exchange: an
answer from a usable endpoint where it must connect, ICMP port unreachable (`refused`) where the
node REJECTs (kube-proxy's REJECT is not TCP-specific), silence where it DROPs (`udp`: evidence
`protocol: UDP`). Unlike a node's own datagrams (`harness.nodeclients`), the external client's
see the REJECT's ICMP error, so all three cases are told apart.

kube-proxy sends a LoadBalancer's ingress IP to the same KUBE-EXT chain as its node port
(`syncProxyRules`, "Capture load-balancer ingress": `-d LB_IP --dport PORT -j KUBE-EXT-<hash>`,
and the same DROP or REJECT in KUBE-EXTERNAL-SERVICES; nftables: the ingress IP in
`service-ips` going to `external-<base>`, and in `no-endpoint-services`), so a connection to the
ingress IP handed to node N must do exactly what one at N's node port does, and under Local the
pod sees the address the load balancer handed it from (the external client's address for N).

A Service's externalIPs (any type) take the same path (`syncProxyRules`, "Capture externalIPs":
`-d EXTIP --dport PORT -j KUBE-EXT-<hash>` "external IP" while the Service has endpoints, and
without external endpoints the same DROP or REJECT in KUBE-EXTERNAL-SERVICES; nftables: the
external IP in `service-ips` going to `external-<base>`, and in `no-endpoint-services`), so a
connection to an external IP handed to node N is judged exactly as one at N's node port
(`harness.model.endpoints.expect_external_ip`), as `node-port`'s part `external-ip`
(`check_external_ip`); the load-balancer part and it differ only in their `Ingress`.

Pure: a function of the model's expectation per node and what a few fresh connections from the
external client to each node's node port saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.checks.nodes import NodeSample, check_every_node
from harness.checks.verdict import Verdict, failed

PROPERTY = "node-port"
ROUTE = "from outside at {node}'s node port"
LOAD_BALANCER_PART = "load-balancer"
LOAD_BALANCER_ROUTE = "from outside to its ingress IP via {node}"


@dataclass(frozen=True)
class ExternalSample(NodeSample):
    """Fresh connections from the external client (own address `client_address`) to `node`'s
    node port of `service`, and the model's expectation there
    (`expect_external(state, service, port, node)`); `keeps_source`: externalTrafficPolicy
    Local, under which every answering pod must have seen `client_address`;
    `via_load_balancer`: sent to the Service's ingress IP via `node` instead of its node
    port; `external_ip`: sent to that externalIP of the Service via `node` instead."""

    client_address: str = ""
    keeps_source: bool = False
    via_load_balancer: bool = False
    external_ip: str | None = None
    udp: bool = False

    def wrong_sources(self) -> list[str]:
        """Under Local, the source each answering pod saw that is not the client's (an unknown
        one, None, is not judged); nothing under Cluster."""
        if not self.keeps_source:
            return []
        return [
            str(o.seen_source)
            for o in self.outcomes
            if o.backend is not None
            and o.seen_source is not None
            and o.seen_source != self.client_address
        ]

    def evidence(self) -> dict[str, Any]:
        found = super().evidence()
        found["external_traffic_policy"] = "Local" if self.keeps_source else "Cluster"
        found["client_address"] = self.client_address
        found["seen_sources"] = sorted({o.seen_source for o in self.outcomes if o.seen_source})
        if self.via_load_balancer:
            found["via"] = "ingress IP"
        if self.external_ip is not None:
            found["via"] = f"external IP {self.external_ip}"
        if self.udp:
            found["protocol"] = "UDP"
        return found


@dataclass(frozen=True)
class Ingress:
    """An address kind outside the node ports that a load balancer or a router hands to one
    node (`node-port`'s parts): the part's name, how its samples came (`route`, formatted with
    the node) and its coverage state."""

    part: str
    route: str
    reached: str


LOAD_BALANCER = Ingress(LOAD_BALANCER_PART, LOAD_BALANCER_ROUTE, "load-balancer-reached")
EXTERNAL_IP = Ingress(
    "external-ip", "from outside to an external IP of it via {node}", "external-ip-reached"
)


def check_node_port(samples: Sequence[ExternalSample]) -> Verdict | None:
    """One verdict over one step's samples (None without any): it holds when every connection
    at every node did what that node's `expect_external` says (connect to a destination usable
    there, time out when the node drops, be refused when it rejects) and, under Local, every
    answering pod saw the client's own address. Evidence: every sample."""
    return _judge(samples, ROUTE)


def check_load_balancer(samples: Sequence[ExternalSample]) -> Verdict | None:
    """`node-port`'s part `load-balancer` over one step's samples sent to ingress IPs (None
    without any): the same standard as `check_node_port`, each node judged by its
    `expect_external`, the source under Local being the address the load balancer handed the
    connection from. Evidence: every sample and `part: load-balancer`."""
    return check_ingress(samples, LOAD_BALANCER)


def check_external_ip(samples: Sequence[ExternalSample]) -> Verdict | None:
    """`node-port`'s part `external-ip` over one step's samples sent to externalIPs (None
    without any): the same standard as `check_node_port`, each node judged by
    `expect_external_ip`, the source under Local being the address the connection was handed
    from. Evidence: every sample (with the external IP) and `part: external-ip`."""
    return check_ingress(samples, EXTERNAL_IP)


def check_ingress(samples: Sequence[ExternalSample], ingress: Ingress) -> Verdict | None:
    """`node-port`'s part `ingress.part` over one step's samples (None without any): `_judge`
    with its route, the part named in the evidence."""
    verdict = _judge(samples, ingress.route)
    if verdict is None:
        return None
    return replace(verdict, evidence={**verdict.evidence, "part": ingress.part})


def _judge(samples: Sequence[ExternalSample], route: str) -> Verdict | None:
    """`check_every_node` over `samples` (`route` says how they came), then the source rule
    under Local."""
    verdict = check_every_node(samples, PROPERTY, route)
    if verdict is None or not verdict.holds:
        return verdict
    for sample in samples:
        wrong = sample.wrong_sources()
        if wrong:
            return failed(
                PROPERTY,
                f"{sample.service} {route.format(node=sample.node)} under externalTrafficPolicy"
                f" Local: {len(wrong)} of {len(sample.outcomes)} answering pods saw source"
                f" {', '.join(sorted(set(wrong)))}, not the client's {sample.client_address}"
                " (kube-proxy does not masquerade it)",
                **verdict.evidence,
            )
    return verdict
