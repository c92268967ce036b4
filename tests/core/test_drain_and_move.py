"""Pods moved to another node and nodes drained (issue 11, item 1: events place, move and drain
pods per node): what the model makes of them, one line for bad input, and every property
holding through them on the model target."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from harness.errors import InvalidEvent, UsageError
from harness.events import (
    CreatePod,
    CreateService,
    DrainNode,
    Event,
    MovePod,
    Scale,
    SetTrafficPolicy,
    apply_all,
    event_from_json,
)
from harness.model.endpoints import expect
from harness.model.objects import TrafficPolicy, labels_of
from harness.model.state import node_pod_cidr
from harness.runner import RunConfig, Runner
from harness.targets.model import ModelTarget

WEB = labels_of({"app": "web"})


def test_a_moved_pod_is_a_new_incarnation_on_the_other_node_with_an_address_there() -> None:
    before = apply_all([CreatePod("p", WEB, node="node-1")])
    after = MovePod("p", "node-2").apply(before)
    old, new = before.pod("p"), after.pod("p")
    assert (new.node, new.labels, new.ready) == ("node-2", WEB, True)
    assert new.uid != old.uid and new.ip != old.ip
    assert new.ip is not None and ip_address(new.ip) in node_pod_cidr("node-2")
    with pytest.raises(InvalidEvent, match="already runs on node-2"):
        MovePod("p", "node-2").apply(after)


def test_a_drain_leaves_every_pod_of_the_node_terminating_and_no_other() -> None:
    state = apply_all([Scale("web", 2, node="node-1"), Scale("api", 2, node="node-2")])
    drained = DrainNode("node-2", grace_s=30).apply(state)
    terminating = sorted(p.name for p in drained.pods.values() if p.terminating)
    assert terminating == ["api-0", "api-1"]
    assert DrainNode("node-2", grace_s=30).apply(drained) == drained  # nothing left to evict
    gone = DrainNode("node-1", grace_s=0).apply(drained)
    assert sorted(gone.pods) == ["api-0", "api-1"]
    with pytest.raises(InvalidEvent, match="grace_s"):
        DrainNode("node-1", grace_s=-1).apply(state)


def test_under_local_policy_the_endpoint_follows_its_pod_to_the_other_node() -> None:
    state = apply_all(
        [
            CreateService("web", WEB),
            CreatePod("p", WEB, node="node-1"),
            SetTrafficPolicy("web", TrafficPolicy.LOCAL),
        ]
    )
    assert [b.pod for b in expect(state, "web", "http", "node-1").usable] == ["p"]
    moved = MovePod("p", "node-2").apply(state)
    assert not expect(moved, "web", "http", "node-1").usable
    assert expect(moved, "web", "http", "node-1").drops  # endpoints elsewhere only: DROP
    assert [b.pod for b in expect(moved, "web", "http", "node-2").usable] == ["p"]


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"kind": "move-pod", "pod": "p"}, "node"),
        ({"kind": "move-pod", "pod": "p", "node": 2}, "node"),
        ({"kind": "drain-node", "node": "node-1", "grace_s": "soon"}, "grace_s"),
    ],
)
def test_bad_move_and_drain_documents_get_one_line(document: object, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint) as caught:
        event_from_json(document)
    assert "\n" not in str(caught.value)


SEQUENCE: list[Event] = [
    CreateService("web", WEB),
    Scale("web", 2, node="node-1"),
    CreatePod("p", WEB, node="node-2"),
    SetTrafficPolicy("web", TrafficPolicy.LOCAL),
    MovePod("p", "node-1"),
    DrainNode("node-1", grace_s=30),
    MovePod("web-0", "node-2"),
]


def test_every_property_holds_through_moves_and_drains_on_the_model() -> None:
    target = ModelTarget()
    target.open()
    try:
        steps = Runner(target, RunConfig(deadline_s=2.0)).run(SEQUENCE)
    finally:
        target.close()
    failing = [v for step in steps for v in step.verdicts if not v.holds]
    assert failing == []
    assert len(steps) == len(SEQUENCE)
