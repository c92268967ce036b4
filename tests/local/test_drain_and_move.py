"""Pods moved to another node and nodes drained on the local cluster (issue 11, item 1): the
moved pod runs in the other node's namespace at an address of that node's pod range, and every
property holds after each step of a sequence that moves and drains under internalTrafficPolicy
Local, on both kernel proxies (2 nodes)."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from harness.events import MovePod
from harness.model.state import node_pod_cidr
from harness.runner import RunConfig, Runner
from harness.targets.local import LocalTarget
from harness.traffic import TrafficRequest
from tests.core.test_drain_and_move import SEQUENCE
from tests.local import two_nodes
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

target = two_nodes.target  # a 2-node target per kernel proxy, reset after each test
cluster = two_nodes.cluster


def test_every_property_holds_through_moves_and_drains(cluster: LocalTarget) -> None:
    steps = Runner(cluster, RunConfig(deadline_s=2.0)).run(SEQUENCE)
    failing = [v for step in steps for v in step.verdicts if not v.holds]
    assert failing == [] and len(steps) == len(SEQUENCE)
    moved = cluster.state.pod("web-0")
    assert moved.node == "node-2" and ip_address(moved.ip or "") in node_pod_cidr("node-2")
    sample = cluster.send(TrafficRequest("web", count=8, timeout_s=0.5))
    assert {o.backend.pod for o in sample.outcomes if o.backend} <= {"web-0", "web-1", "p"}


def test_a_moved_pod_answers_from_its_new_node(cluster: LocalTarget) -> None:
    for event in SEQUENCE[:3]:
        cluster.apply(event)
    cluster.apply(MovePod("p", "node-1"))
    sample = cluster.send(TrafficRequest("web", count=40, timeout_s=0.5))  # p missed: (2/3)^40
    answered = {o.backend.pod: o.backend.uid for o in sample.outcomes if o.backend}
    assert answered.get("p") == cluster.state.pod("p").uid  # the new incarnation answers
