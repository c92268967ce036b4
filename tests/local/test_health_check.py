"""The healthCheckNodePort on the local cluster (issue 11 item 3, I9): served by every node's
kernel proxy as kube-proxy's service health server serves it, asked from the external client,
and answered alike by the model. One 2-node target per proxy for the module; every test leaves
it reset."""

from __future__ import annotations

import pytest

from harness.checks.external import PROPERTY
from harness.checks.health import PART
from harness.checks.verdict import Verdict
from harness.errors import UsageError
from harness.events import (
    DeletePod,
    Event,
    RestartProxy,
    SetExternalTrafficPolicy,
)
from harness.model.objects import TrafficPolicy
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import HealthCountsTerminatingProxy
from harness.runner import RunConfig, Runner
from harness.targets.local import LocalTarget
from harness.targets.model import ModelTarget
from harness.traffic import ErrorKind, HealthCheckReply, HealthCheckRequest
from tests.core.test_health_check import LOCAL_LB
from tests.local import two_nodes
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

NODES = two_nodes.NODES
BALANCED_LOCAL = LOCAL_LB  # p1 on node-1, p2 on node-2, a LoadBalancer under Local


target = two_nodes.target  # the fixtures: a 2-node target per kernel proxy, reset after each test
cluster = two_nodes.cluster


def both(events: list[Event], cluster: LocalTarget) -> ModelTarget:
    """Apply `events` to `cluster` and to a fresh model; the model."""
    model = ModelTarget()
    for event in events:
        cluster.apply(event)
        model.apply(event)
    return model


def asked(target: LocalTarget | ModelTarget, port: int) -> list[HealthCheckReply]:
    return [target.health_check(HealthCheckRequest(node, port)) for node in NODES]


def summary(replies: list[HealthCheckReply]) -> list[tuple[object, ...]]:
    return [(r.status, r.error, r.local_endpoints, r.service) for r in replies]


def test_every_node_serves_the_port_as_kube_proxy_and_as_the_model_says(
    cluster: LocalTarget,
) -> None:
    model = both(BALANCED_LOCAL, cluster)
    port = cluster.state.services["web"].health_check_node_port
    assert port is not None
    replies = asked(cluster, port)
    assert summary(replies) == [(200, None, 1, ("default", "web"))] * 2
    assert all(r.nosniff and r.body and r.body["serviceProxyHealthy"] is True for r in replies)
    assert summary(replies) == summary(asked(model, port))
    # only a terminating endpoint left on node-2, still serving: 503 there (I9)
    cluster.apply(DeletePod("p2", 30.0))
    model.apply(DeletePod("p2", 30.0))
    replies = asked(cluster, port)
    assert summary(replies) == [
        (200, None, 1, ("default", "web")),
        (503, None, 0, ("default", "web")),
    ]
    assert summary(replies) == summary(asked(model, port))


def test_the_port_is_released_with_the_local_policy(cluster: LocalTarget) -> None:
    model = both(BALANCED_LOCAL, cluster)
    port = cluster.state.services["web"].health_check_node_port
    assert port is not None
    released = SetExternalTrafficPolicy("web", TrafficPolicy.CLUSTER)
    cluster.apply(released)
    model.apply(released)
    assert cluster.state.services["web"].health_check_node_port is None
    assert [r.error for r in asked(cluster, port)] == [ErrorKind.REFUSED] * 2
    assert [r.error for r in asked(model, port)] == [ErrorKind.REFUSED] * 2


def test_a_node_the_cluster_lacks_is_one_line(cluster: LocalTarget) -> None:
    with pytest.raises(UsageError, match="node-9"):
        cluster.health_check(HealthCheckRequest("node-9", 30000))


SEQUENCE: list[Event] = [
    *BALANCED_LOCAL,
    DeletePod("p2", 30.0),  # node-2 keeps a terminating endpoint that serves: 503 there (I9)
    SetExternalTrafficPolicy("web", TrafficPolicy.CLUSTER),  # the port is released
]


def health_verdicts(target: LocalTarget) -> list[list[Verdict]]:
    """The `node-port` verdicts of part `health-check-node-port` of each step of SEQUENCE."""
    steps = Runner(target, RunConfig(deadline_s=2.0)).run(SEQUENCE)
    return [
        [v for v in step.verdicts if v.property == PROPERTY and v.evidence.get("part") == PART]
        for step in steps
    ]


def test_the_part_holds_on_the_real_proxy_and_catches_the_disclosed_mutant(
    cluster: LocalTarget,
) -> None:
    """`health-check-node-port` by a fixed sequence: judged once the LoadBalancer is Local
    (200 at both nodes), after node-2's endpoint terminates (503 there, 200 at node-1) and
    once the port is released (refused at both). The real proxies hold;
    `mutant-iptables-health-counts-terminating` answers 200 at node-2 and fails there."""
    held = health_verdicts(cluster)
    assert [len(v) for v in held] == [0, 0, 0, 0, 1, 1, 1]
    assert all(v.holds for step in held for v in step), held
    expected = [[s["expected"] for s in step[0].evidence["samples"]] for step in held[4:]]
    assert expected == [
        [{"status": 200, "count": 1}] * 2,
        [{"status": 200, "count": 1}, {"status": 503, "count": 0}],
        ["refused"] * 2,
    ]
    if not isinstance(cluster.proxy, IptablesProxy):  # the mutant is iptables'
        return
    cluster.reset()
    cluster.new_proxy = HealthCountsTerminatingProxy
    try:
        cluster.apply(RestartProxy())  # every node's proxy is now the mutant
        caught = health_verdicts(cluster)
    finally:
        cluster.new_proxy = IptablesProxy  # the fixture's reset starts the real ones
    assert all(v.holds for v in caught[4]), caught
    (verdict,) = caught[5]
    assert not verdict.holds and "at node-2: status 200, not 503" in verdict.message, verdict
