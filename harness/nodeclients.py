"""Nodes as clients: after a step, a few fresh connections from every node's host network to the
changed Services, judged against each node's own expectation (`harness.checks.nodes`,
`every-node`; invariants I4, I10).

The harness's clients hang off node-1, so every other check sees a Service through node-1's
proxy alone. After a step whose state the proxies say is final and in which nothing failed
(a data plane broken for every client fails the step's own checks; this must single out what
only another node shows), `NodeClients.after` sends `REQUESTS` fresh connections at once from
each node's host network (`TrafficRequest.client_node`) to the first port of every Service whose
expectation changed for some node (all Services after a proxy restart or stale snapshot, which
reprogram everything), at most `MAX_SERVICES` of them (in name order, rotated by the step so a
replay picks the same). A connection that must be dropped or refused is given `EMPTY_TIMEOUT_S`
(a REJECT answers in milliseconds, a forwarded one too); one that must connect, the run's
request timeout. A batch costs one timeout at most.

A UDP Service is judged from a node only where it must connect: a datagram the node itself
sends and its own filter rules REJECT or DROP (OUTPUT) fails to send with EPERM either way
(`net/ipv4/ip_output.c`: a netfilter drop is `-EPERM` to the sender; the REJECT's ICMP error
comes after it), so from the host the two cannot be told apart (measured: iptables and
nftables, both `other`). TCP shows them apart (the REJECT's ICMP refuses the connect; a dropped
SYN times out) and is judged in all three cases.

Only on targets with a proxy on more than one node (`host_nodes`: the model's two nodes, the
local cluster with `--nodes` 2 or more); elsewhere the property is not applicable and its
coverage state `seen-from-every-node` (a sampled Service the nodes see differently:
`seen_differently`) uncheckable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from harness.checks.nodes import NodeSample, check_every_node
from harness.checks.verdict import Verdict
from harness.events import NEMESIS_EVENTS, Event
from harness.model.endpoints import Expectation, expect
from harness.model.objects import Backend, Protocol
from harness.model.state import ClusterState
from harness.targets.base import Target
from harness.traffic import TrafficRequest

PORT = "http"
FEATURE = "seen-from-every-node"
REQUESTS = 4
MAX_SERVICES = 2
EMPTY_TIMEOUT_S = 0.5


def host_nodes(target: object) -> tuple[str, ...]:
    """The nodes whose host network `target` sends from (`TrafficRequest.client_node`): its
    `node_names` when it runs a proxy on more than one node; none otherwise."""
    nodes = tuple(getattr(target, "node_names", ()))
    return nodes if len(nodes) > 1 else ()


def unavailable(target: object) -> str | None:
    """Why `every-node` cannot run on `target` (None: it can); a target may say why itself
    (`external_unsupported`: the kube target's hostNetwork clients serve both)."""
    if host_nodes(target):
        return None
    why = getattr(target, "external_unsupported", None)
    if why:
        return str(why)
    return "the target runs a proxy on one node only (a local cluster with --nodes 2 or more)"


def uncheckable(target: object) -> frozenset[str]:
    """The coverage states never checked on `target`."""
    return frozenset() if host_nodes(target) else frozenset({FEATURE})


def changed_services(
    event: Event, before: ClusterState, after: ClusterState, nodes: tuple[str, ...]
) -> list[str]:
    """Existing Services whose expectation changed for any of `nodes` (every Service after a
    nemesis event: the proxies programmed everything anew). Pure."""
    if isinstance(event, NEMESIS_EVENTS):
        return sorted(after.services)
    return [
        name
        for name in sorted(after.services)
        if any(expect(before, name, PORT, n) != expect(after, name, PORT, n) for n in nodes)
    ]


def seen_differently(samples: list[NodeSample]) -> bool:
    """Whether the nodes' expectations of some sampled Service differ (what it must do, or
    where it may go): the coverage state `seen-from-every-node`, where a proxy told the wrong
    node, or one programming every node alike, shows."""
    views: dict[str, set[tuple[str, frozenset[Backend]]]] = {}
    for sample in samples:
        views.setdefault(sample.service, set()).add(
            (sample.outcome, frozenset(sample.expected.usable))
        )
    return any(len(seen) > 1 for seen in views.values())


Sample = TypeVar("Sample")


def sample_each(
    services: list[str],
    step: int,
    nodes: tuple[str, ...],
    sample: Callable[[str, str], Sample | None],
) -> list[Sample]:
    """`sample(service, node)` for every node and at most MAX_SERVICES of `services` (in name
    order, rotated by `step` so a replay picks the same); a None sample is left out."""
    if len(services) > MAX_SERVICES:
        start = step % len(services)
        services = (services[start:] + services[:start])[:MAX_SERVICES]
    return [
        found
        for service in services
        for node in nodes
        if (found := sample(service, node)) is not None
    ]


def sample_request(
    state: ClusterState,
    service: str,
    expected: Expectation,
    timeout_s: float,
    udp_failures: bool = False,
    **where: str,
) -> TrafficRequest | None:
    """`REQUESTS` fresh connections at once to `service`'s port PORT from `where` (the
    request's `client_node` or `external_node`), each given `timeout_s` where they must connect
    and EMPTY_TIMEOUT_S where they must be dropped or refused; None for a UDP port that must
    not connect (module docstring: not judged), unless `udp_failures` (a client off the nodes,
    which a node's REJECT answers with ICMP port unreachable and its DROP leaves unanswered)."""
    found = state.services[service]
    datagrams = (Protocol.UDP.value, Protocol.SCTP.value)  # SCTP's raw INIT fails alike
    udp = any(p.name == PORT and p.protocol in datagrams for p in found.ports)
    if udp and not expected.usable and not udp_failures:
        return None
    return TrafficRequest(
        service=service,
        count=REQUESTS,
        timeout_s=timeout_s if expected.usable else EMPTY_TIMEOUT_S,
        parallel=True,
        **where,  # type: ignore[arg-type]
    )


def unsent_from_nodes(target: object, state: ClusterState, service: str) -> str | None:
    """Why `target` does not send to `service`'s port PORT from the nodes' networks, or None
    when it does: the target's `host_unsent` (protocol -> why; the kube target's SCTP, whose
    hostNetwork clients have no SCTP client) names the port's protocol. Such a sample is not
    judged (None), as a UDP port that must not connect is not. Pure."""
    unsent = getattr(target, "host_unsent", None) or {}
    found = state.services[service]
    return next(
        (str(unsent[p.protocol]) for p in found.ports if p.name == PORT and p.protocol in unsent),
        None,
    )


class NodeClients:
    """One sample per node and changed Service per step (module docstring). Holds nothing
    between steps. A subclass may sample another route to the nodes by overriding `route_nodes`,
    `changed`, `_sample` and `judge` (`harness.externalclients`)."""

    record_key: ClassVar[str] = "every_node"
    """Where a step's record keeps the samples' evidence."""

    def __init__(self, target: Target, timeout_s: float) -> None:
        self.target = target
        self.nodes = self.route_nodes(target)
        self.timeout_s = timeout_s

    def route_nodes(self, target: Target) -> tuple[str, ...]:
        """The nodes sampled on `target` (none: nothing is sent)."""
        return host_nodes(target)

    def changed(self, event: Event, before: ClusterState, after: ClusterState) -> list[str]:
        """The Services to sample after `event` (`changed_services`)."""
        return changed_services(event, before, after, self.nodes)

    def judge(self, samples: list[Any]) -> tuple[Verdict | None, frozenset[str]]:
        """The verdict over one step's samples (None without any) and the coverage features
        they reached and checked."""
        features = frozenset({FEATURE}) if seen_differently(samples) else frozenset()
        return check_every_node(samples), features

    def after(
        self,
        step: int,
        event: Event,
        before: ClusterState,
        after: ClusterState,
        record: dict[str, Any],
    ) -> tuple[list[Verdict], frozenset[str], frozenset[str]]:
        """Send the samples after step `step` and judge them: the verdicts and the coverage
        features reached and checked. Nothing on a target with one node or when no Service
        changed."""
        if not self.nodes:
            return [], frozenset(), frozenset()
        changed = self.changed(event, before, after)
        samples = sample_each(changed, step, self.nodes, lambda s, n: self._sample(after, s, n))
        verdict, features = self.judge(samples)
        if verdict is None:
            return [], frozenset(), frozenset()
        record[self.record_key] = verdict.evidence["samples"]
        return [verdict], features, features

    def _sample(self, state: ClusterState, service: str, node: str) -> NodeSample | None:
        """A sample from `node`'s host network, or None for one that cannot be judged (a UDP
        Service that must not connect from `node`: module docstring)."""
        expected = expect(state, service, PORT, node)
        request = sample_request(state, service, expected, self.timeout_s, client_node=node)
        if request is None or unsent_from_nodes(self.target, state, service):
            return None
        return NodeSample(service, node, expected, self.target.send(request).outcomes)
