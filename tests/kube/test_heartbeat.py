"""The run's Lease: created on open, renewed by a bounded daemon thread, deleted on close; renewal
failures are recorded and said at the end, never raised mid-run; freshness on the server's clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fakecluster import FakeCluster, make_nodes
from kubernetes.client import CoordinationV1Api
from mockapi import MockApiServer

from harness.errors import EnvironmentProblem
from harness.kube.api import Cluster
from harness.kube.heartbeat import (
    CLOCK_ALLOWANCE_S,
    LEASE_DURATION_S,
    LEASE_NAME,
    SKEW_ALLOWANCE_S,
    STOP_WAIT_S,
    Heartbeat,
    lease_age,
    server_time,
    utc_now,
)
from harness.kube.objects import managed_labels
from harness.registry import TargetOptions
from harness.targets.kube import KubeTarget

NAMESPACE = "svc-lb-hkbeat1"


def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Bounded wait for `condition`; fails the test when it never holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def leases(cluster: Cluster) -> Any:
    return CoordinationV1Api(cluster.api_client)


def renew_time(cluster: Cluster) -> datetime:
    return leases(cluster).read_namespaced_lease(LEASE_NAME, NAMESPACE).spec.renew_time


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    cluster.core.create_namespace(
        {"metadata": {"name": NAMESPACE, "labels": managed_labels("hkbeat1")}}
    )
    return NAMESPACE


def test_the_thread_renews_the_lease_and_stops_and_deletes_it_on_close(
    cluster: Cluster, namespace: str
) -> None:
    heartbeat = Heartbeat(cluster, namespace, "hkbeat1", renew_every_s=0.02)
    heartbeat.start()
    thread = heartbeat._thread
    assert thread is not None and thread.daemon
    lease = leases(cluster).read_namespaced_lease(LEASE_NAME, namespace)
    assert lease.spec.lease_duration_seconds == LEASE_DURATION_S
    assert lease.spec.holder_identity.endswith("/hkbeat1")
    first = lease.spec.renew_time
    until(lambda: heartbeat.renewals >= 2)
    second = renew_time(cluster)
    assert second != first
    assert abs((second - utc_now()).total_seconds()) < CLOCK_ALLOWANCE_S  # the server's clock
    time.sleep(0.1)
    until(lambda: heartbeat.renewals >= 4)
    assert renew_time(cluster) > second  # Date's jitter never moves it back
    started = time.monotonic()
    heartbeat.stop()
    assert time.monotonic() - started < STOP_WAIT_S + 1.0  # close is never held up
    assert not thread.is_alive()
    assert leases(cluster).list_namespaced_lease(namespace).items == []
    assert heartbeat.problem() is None
    heartbeat.stop()  # idempotent


def test_a_lease_deleted_under_the_run_is_created_again(cluster: Cluster, namespace: str) -> None:
    heartbeat = Heartbeat(cluster, namespace, "hkbeat1", renew_every_s=0.02)
    heartbeat.start()
    try:
        leases(cluster).delete_namespaced_lease(LEASE_NAME, namespace)
        until(lambda: bool(leases(cluster).list_namespaced_lease(namespace).items))
    finally:
        heartbeat.stop()


def test_renewal_failures_are_recorded_not_raised(
    mock_api: MockApiServer, cluster: Cluster, namespace: str
) -> None:
    heartbeat = Heartbeat(cluster, namespace, "hkbeat1", renew_every_s=0.02)
    heartbeat.start()
    mock_api.stop()  # the server goes away mid-run
    until(lambda: heartbeat.problem() is not None)
    thread = heartbeat._thread
    assert thread is not None and thread.is_alive()  # still trying, the run goes on
    with pytest.raises(EnvironmentProblem, match="cannot reach the Kubernetes API server"):
        heartbeat.stop()  # only the final delete's error, one line
    problem = heartbeat.problem()
    assert problem is not None and "\n" not in problem
    assert f"{LEASE_NAME} in namespace {namespace}) failed to renew" in problem
    assert "cannot reach the Kubernetes API server" in problem
    assert not thread.is_alive()


def test_the_target_holds_a_lease_while_open_and_reports_renewal_problems_at_close(
    mock_api: MockApiServer, cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    make_nodes(cluster)
    with FakeCluster(mock_api.url) as fake:
        target = KubeTarget(
            TargetOptions(extra={"startup_s": 5, "lease_renew_s": 0.02}),
            cluster=cluster,
            pod_exec=fake.exec,
        )
        target.open()
        namespace = target.namespace
        heartbeat = target._heartbeat
        assert heartbeat is not None
        until(lambda: heartbeat.renewals >= 1)
        held = leases(cluster).read_namespaced_lease(LEASE_NAME, namespace)
        assert held.metadata.labels == managed_labels(target.prefix)
        heartbeat._failures, heartbeat._first_problem = 2, "a made-up failure"
        target.close()
    assert heartbeat._thread is None and target._heartbeat is None
    assert target.lease_problem is not None and "failed to renew 2 time(s)" in target.lease_problem
    assert capsys.readouterr().err.startswith("warning: the run's lease")


# -- freshness, pure ------------------------------------------------------------------------------
NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def lease(renewed_s_ago: float | None, duration: int | None = LEASE_DURATION_S) -> Any:
    renew = None if renewed_s_ago is None else NOW - timedelta(seconds=renewed_s_ago)
    spec = SimpleNamespace(renew_time=renew, lease_duration_seconds=duration, holder_identity="h")
    return SimpleNamespace(spec=spec)


def test_freshness_is_renew_time_plus_duration_plus_the_allowance() -> None:
    assert lease_age(lease(3), NOW, CLOCK_ALLOWANCE_S).alive
    assert lease_age(
        lease(LEASE_DURATION_S + CLOCK_ALLOWANCE_S - 0.1), NOW, CLOCK_ALLOWANCE_S
    ).alive
    assert not lease_age(lease(LEASE_DURATION_S + CLOCK_ALLOWANCE_S), NOW, CLOCK_ALLOWANCE_S).alive
    assert lease_age(lease(LEASE_DURATION_S + 30), NOW, SKEW_ALLOWANCE_S).alive  # local clocks
    assert lease_age(lease(-10), NOW, CLOCK_ALLOWANCE_S).alive  # renewed "in the future"
    assert not lease_age(lease(None), NOW, CLOCK_ALLOWANCE_S).alive
    assert not lease_age(lease(1, duration=None), NOW, CLOCK_ALLOWANCE_S).alive
    described = lease_age(lease(3), NOW, CLOCK_ALLOWANCE_S).describe()
    assert described == "its run is alive (lease renewed 3 s ago by h)"


def test_the_servers_clock_comes_from_the_date_header() -> None:
    assert server_time({"Date": "Sun, 29 Nov 2026 12:00:00 GMT"}) == NOW
    assert server_time({"date": "Sun, 29 Nov 2026 12:00:00 GMT"}) == NOW
    assert server_time({}) is None
    assert server_time(None) is None
    assert server_time({"Date": "not a date"}) is None
