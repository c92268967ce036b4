"""trafficDistribution on the local cluster (I11): each node's kernel proxy uses the hinted
endpoints of its own zone, all of them where its zone has none, and a proxy that ignores the
hints is caught by a fixed sequence (`mutant-iptables-ignores-topology`, listed in
`CAUGHT_CHEAPER`). One 3-node iptables target for the module (node-1 zone-a, node-2 zone-b,
node-3 zone-c); every test leaves it reset."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.checks.nodes import PROPERTY
from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    RestartProxy,
    Scale,
    SetTrafficDistribution,
)
from harness.model.objects import PREFER_CLOSE, PREFER_SAME_ZONE, labels_of
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import IgnoresTopologyProxy
from harness.runner import RunConfig, Runner
from harness.targets.local import LocalTarget
from harness.traffic import TrafficRequest
from tests.local import three_nodes, two_nodes
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
NODES = three_nodes.NODES


target = three_nodes.target  # one 3-node iptables target for the module, reset after each test
cluster = two_nodes.cluster


def answered(target: LocalTarget, node: str, count: int = 9) -> Counter[str]:
    """Who answered `count` fresh connections to `web` from `node`'s host network (30 make
    missing one of two endpoints a 2e-9 chance)."""
    request = TrafficRequest("web", count=count, timeout_s=1.0, parallel=True, client_node=node)
    sample = target.send(request)
    return Counter(o.backend.pod if o.backend else str(o.error) for o in sample.outcomes)


@pytest.mark.parametrize("distribution", [PREFER_CLOSE, PREFER_SAME_ZONE])
def test_each_node_reaches_its_own_zone_and_all_where_its_zone_has_none(
    cluster: LocalTarget, distribution: str
) -> None:
    cluster.apply(CreateService("web", WEB))
    for number, node in enumerate(NODES, 1):
        cluster.apply(CreatePod(f"p{number}", WEB, node=node))
    cluster.apply(SetTrafficDistribution("web", distribution))
    for number, node in enumerate(NODES, 1):
        assert answered(cluster, node) == {f"p{number}": 9}, node
    cluster.apply(DeletePod("p3", 0.0))  # zone-c has no endpoint left: no hint names it
    assert set(answered(cluster, "node-3", 30)) == {"p1", "p2"}
    assert answered(cluster, "node-1") == {"p1": 9}  # zone-a still has its own
    cluster.apply(SetTrafficDistribution("web", None))  # hints cleared: everyone everywhere
    assert set(answered(cluster, "node-1", 30)) == {"p1", "p2"}


def test_a_proxy_that_ignores_hints_is_caught_at_its_distribution_step(
    cluster: LocalTarget,
) -> None:
    """`mutant-iptables-ignores-topology` by a fixed sequence: endpoints in zone-a and zone-b
    under PreferClose; node-1's and node-2's clients must reach their own zone's only, and the
    mutant sends them to both. node-1's clients (the harness's own) show it first, so the
    step's `no-stale-traffic` fails (and `every-node`, which runs only after a step that held,
    is not reached). The real proxies hold on the same sequence, `every-node` included."""
    sequence = [
        CreateService("web", WEB),
        Scale("web", 2, node="node-1"),
        Scale("web", 4, node="node-2"),
        SetTrafficDistribution("web", PREFER_CLOSE),
    ]
    held = Runner(cluster, RunConfig(deadline_s=2.0)).run(sequence)
    judged = [v for step in held for v in step.verdicts if v.property == PROPERTY]
    assert judged and all(v.holds for v in judged), judged
    stale = [v for v in held[-1].verdicts if v.property == "no-stale-traffic"]
    assert stale and all(v.holds for v in stale), stale
    assert "topology-narrowed" in held[-1].checked
    cluster.reset()
    cluster.new_proxy = IgnoresTopologyProxy
    try:
        cluster.apply(RestartProxy())  # every node's proxy is now the mutant
        caught = Runner(cluster, RunConfig(deadline_s=2.0)).run(sequence)
        failing = {v.property for v in caught[-1].verdicts if not v.holds}
        assert "no-stale-traffic" in failing, caught[-1].verdicts
        earlier = [v for step in caught[:-1] for v in step.verdicts]
        assert all(v.holds for v in earlier if v.property == "no-stale-traffic"), earlier
    finally:
        cluster.new_proxy = IptablesProxy  # the fixture's reset starts the real ones again
