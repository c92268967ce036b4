"""The userspace proxy on real traffic: round robin, ClientIP affinity, REJECT, and the endpoint
choice of `CategorizeEndpoints` (ready first, serving-terminating as fallback)."""

from __future__ import annotations

import subprocess
import time
from collections import Counter

import pytest

from harness.events import (
    CreateService,
    DeletePod,
    EvictPod,
    RestartPod,
    Scale,
    SetAffinity,
    SetReady,
    SetTrafficPolicy,
    Wait,
)
from harness.model.objects import Affinity, Backend, TrafficPolicy, labels_of
from harness.targets.local import LocalTarget
from harness.traffic import ErrorKind, TrafficRequest
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]
WEB = labels_of({"app": "web"})


def hits(target: LocalTarget, count: int, client: str = "client-1") -> Counter[str]:
    sample = target.send(TrafficRequest("web", client=client, count=count, timeout_s=1.0))
    seen: Counter[str] = Counter(str(o.backend) for o in sample.outcomes if o.backend)
    seen.update(o.error.value for o in sample.outcomes if o.error)
    return seen


def test_round_robin_spreads_fresh_connections_exactly_evenly(
    userspace_target: LocalTarget,
) -> None:
    userspace_target.apply(CreateService("web", WEB))
    userspace_target.apply(Scale("web", 4))
    assert hits(userspace_target, 40) == {f"web-{i}/u{i + 1}": 10 for i in range(4)}


def test_no_usable_endpoint_is_refused_at_once_and_returns(userspace_target: LocalTarget) -> None:
    userspace_target.apply(CreateService("web", WEB))
    sample = userspace_target.send(TrafficRequest("web", count=5, timeout_s=1.0))
    assert [o.error for o in sample.outcomes] == [ErrorKind.REFUSED] * 5
    assert max(o.latency_ms for o in sample.outcomes) < 100
    userspace_target.apply(Scale("web", 1))
    assert hits(userspace_target, 3) == {"web-0/u1": 3}


def test_local_policy_with_endpoints_elsewhere_drops_in_parallel(
    userspace_target: LocalTarget,
) -> None:
    """kube-proxy's "has no local endpoints" DROP: no answer, so every connect times out; the
    parallel batch costs one timeout. With no ready or serving endpoint anywhere it is refused."""
    userspace_target.apply(CreateService("web", WEB))
    userspace_target.apply(SetTrafficPolicy("web", TrafficPolicy.LOCAL))
    userspace_target.apply(Scale("web", 2, node="node-2"))
    request = TrafficRequest("web", count=8, timeout_s=0.5, parallel=True)
    started = time.monotonic()
    sample = userspace_target.send(request)
    assert [o.error for o in sample.outcomes] == [ErrorKind.TIMEOUT] * 8
    assert time.monotonic() - started < 2.0
    userspace_target.apply(SetReady("web-0", False))
    userspace_target.apply(SetReady("web-1", False))
    refused = userspace_target.send(TrafficRequest("web", count=3, timeout_s=1.0))
    assert [o.error for o in refused.outcomes] == [ErrorKind.REFUSED] * 3


def test_unready_pods_get_no_new_connections(userspace_target: LocalTarget) -> None:
    userspace_target.apply(CreateService("web", WEB))
    userspace_target.apply(Scale("web", 3))
    userspace_target.apply(SetReady("web-1", False))
    assert hits(userspace_target, 20) == {"web-0/u1": 10, "web-2/u3": 10}


def test_terminating_pods_serve_only_when_nothing_is_ready(userspace_target: LocalTarget) -> None:
    userspace_target.apply(CreateService("web", WEB))
    userspace_target.apply(Scale("web", 2))
    userspace_target.apply(DeletePod("web-0", 30))
    assert hits(userspace_target, 6) == {"web-1/u2": 6}
    userspace_target.apply(DeletePod("web-1", 30))  # all terminating: the KEP-1669 fallback
    assert hits(userspace_target, 6) == {"web-0/u1": 3, "web-1/u2": 3}
    userspace_target.apply(Wait(31))  # grace periods over: gone, so REJECT
    assert hits(userspace_target, 2) == {"refused": 2}


def test_restarted_and_evicted_pods_are_told_apart(userspace_target: LocalTarget) -> None:
    userspace_target.apply(CreateService("web", WEB))
    userspace_target.apply(Scale("web", 2))
    userspace_target.apply(RestartPod("web-0"))  # same address, new incarnation
    assert hits(userspace_target, 4) == {"web-0/u3": 2, "web-1/u2": 2}
    userspace_target.apply(EvictPod("web-1"))
    assert hits(userspace_target, 4) == {"web-0/u3": 4}


def test_client_ip_affinity_sticks_per_client_and_expires(userspace_target: LocalTarget) -> None:
    userspace_target.apply(CreateService("web", WEB))
    userspace_target.apply(Scale("web", 3))
    userspace_target.apply(SetAffinity("web", Affinity.CLIENT_IP, 1))
    first = hits(userspace_target, 10, "client-1")
    second = hits(userspace_target, 10, "client-2")
    assert len(first) == 1 and len(second) == 1 and first != second
    time.sleep(1.3)
    after = hits(userspace_target, 5, "client-1")
    assert len(after) == 1 and after != first  # round robin moved on once the timeout passed


def test_kept_alive_connections_stay_on_their_backend(userspace_target: LocalTarget) -> None:
    userspace_target.apply(CreateService("web", WEB))
    userspace_target.apply(Scale("web", 3))
    sample = userspace_target.send(
        TrafficRequest("web", count=30, keep_alive=True, connections=3, timeout_s=1.0)
    )
    per_connection = {o.connection: set() for o in sample.outcomes}
    for outcome in sample.outcomes:
        per_connection[outcome.connection].add(outcome.backend)
    assert all(len(backends) == 1 for backends in per_connection.values())
    assert len(set().union(*per_connection.values())) == 3


def test_a_pod_reaches_itself_through_its_service(userspace_target: LocalTarget) -> None:
    userspace_target.apply(CreateService("web", WEB))
    userspace_target.apply(Scale("web", 1))
    handle = userspace_target._handles["web-0"]
    vip = userspace_target.state.services["web"].cluster_ip
    answer = subprocess.run(
        ["ip", "netns", "exec", handle.netns, "curl", "-s", "-m", "2", f"http://{vip}/"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert answer.stdout == "web-0 u1"


def test_endpoint_changes_reach_new_connections_quickly(userspace_target: LocalTarget) -> None:
    userspace_target.apply(CreateService("web", WEB))
    userspace_target.apply(Scale("web", 1))
    started = time.monotonic()
    userspace_target.apply(SetReady("web-0", False))
    userspace_target.apply(Scale("web", 2))
    assert time.monotonic() - started < 1.0
    assert hits(userspace_target, 4) == {"web-1/u2": 4}
    assert (
        Backend("web-0", "u1") not in userspace_target.send(TrafficRequest("web", count=4)).hits()
    )
