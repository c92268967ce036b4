"""Held UDP flows from outside to node ports on the model (issue 12 item 2 for NodePort,
kubernetes#59368; `harness.longlived`): once a UDP Service has a node port, the external client
holds a flow with a fixed 5-tuple to each node's node port; each is judged by that node's
expectation from outside (`expect_external`): it stays on its endpoint while usable there,
moves once it is not, fails without being blackholed where the node drops (externalTrafficPolicy
Local, no local endpoint), and is forgotten with its node port."""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import UsageError
from harness.events import (
    CreateService,
    Event,
    Scale,
    SetExternalTrafficPolicy,
    SetReady,
    SetServiceType,
)
from harness.known_issues import match
from harness.longlived import MAX_NODE_PORT_HELD
from harness.model.objects import Protocol, ServiceType, TrafficPolicy, labels_of
from harness.runner import replay
from harness.targets.model import ModelTarget

WEB = labels_of({"app": "web"})
SEQUENCE: list[Event] = [
    CreateService("web", WEB, "udp", protocol=Protocol.UDP),
    Scale("web", 1),  # web-0 on node-1
    SetServiceType("web", ServiceType.NODE_PORT),  # a flow held at each node
    Scale("web", 2),
    SetReady("web-0", False),  # both move to web-1
    SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL),  # node-2 has none: DROP there
    SetServiceType("web", ServiceType.CLUSTER_IP),  # the node port goes: asked, then forgotten
    Scale("web", 3),
]


def external(record: dict[str, Any]) -> dict[str, str | None]:
    """The held flows from outside after a step: client to who answered."""
    return {
        c["client"]: c["answered_by"]
        for c in record.get("long_lived", [])
        if "node port" in c["client"]
    }


def test_flows_from_outside_are_held_judged_per_node_and_forgotten() -> None:
    history = replay(ModelTarget(), SEQUENCE).history.records
    assert all(
        record["verdicts"] == [] or isinstance(record["verdicts"], int) for record in history
    )
    assert [len(external(r)) for r in history] == [0, 0, 0, 2, 2, 2, 2, 0]
    assert set(external(history[3]).values()) == {"web-0/u1"}
    assert set(external(history[4]).values()) == {"web-1/u2"}
    assert external(history[5]) == {
        "external at node-1's node port": "web-1/u2",
        "external at node-2's node port": None,  # dropped: nothing local there
    }
    assert MAX_NODE_PORT_HELD == 2


def test_a_flow_is_held_only_to_a_udp_node_port() -> None:
    target = ModelTarget()
    for event in SEQUENCE[:2]:
        target.apply(event)
    with pytest.raises(UsageError, match="no UDP port 'http' with a node port"):
        target.hold_node_port("web", "node-1", 1.0)


def test_a_stale_flow_from_outside_matches_kubernetes_59368_and_one_to_the_vip_does_not() -> None:
    def verdict(client: str) -> dict[str, Any]:
        flow = {"fault": "stale", "backend": "web-0/u1", "client": client, "service": "web"}
        return {"property": "long-lived-connections", "evidence": {"udp_flows": [flow]}}

    ids = {m.issue.id for m in match("long-lived-connections", SEQUENCE[:5], [verdict(NODE)])}
    assert "kubernetes#59368" in ids
    ids = {m.issue.id for m in match("long-lived-connections", SEQUENCE[:5], [verdict("c1")])}
    assert "kubernetes#59368" not in ids


NODE = "external at node-1's node port"
