"""The healthCheckNodePort on the local cluster (issue 11 item 3, I9): served by every node's
kernel proxy as kube-proxy's service health server serves it, asked from the external client,
and answered alike by the model. One 2-node target per proxy for the module; every test leaves
it reset."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.errors import UsageError
from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    Event,
    SetExternalTrafficPolicy,
    SetServiceType,
)
from harness.model.objects import ServiceType, TrafficPolicy, labels_of
from harness.proxies.iptables import IptablesProxy
from harness.proxies.nftables import NftablesProxy
from harness.targets.local import LocalTarget
from harness.targets.model import ModelTarget
from harness.traffic import ErrorKind, HealthCheckReply, HealthCheckRequest
from tests.local.conftest import needs_root, opened_target

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
NODES = ("node-1", "node-2")
BALANCED_LOCAL: list[Event] = [
    CreateService("web", WEB),
    CreatePod("p1", WEB, node="node-1"),
    CreatePod("p2", WEB, node="node-2"),
    SetServiceType("web", ServiceType.LOAD_BALANCER),
    SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL),
]


@pytest.fixture(scope="module", params=[IptablesProxy, NftablesProxy], ids=["iptables", "nftables"])
def target(request: pytest.FixtureRequest) -> Iterator[LocalTarget]:
    with opened_target(request.param, 2) as opened:
        yield opened


@pytest.fixture
def cluster(target: LocalTarget) -> Iterator[LocalTarget]:
    """The module's target, reset after the test."""
    try:
        yield target
    finally:
        target.reset()


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
