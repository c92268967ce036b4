"""`harness clean --kube`: only what carries the harness's label goes, and never a live run's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from kubernetes.client import CoordinationV1Api

from harness.errors import EnvironmentProblem, UsageError
from harness.kube.api import Cluster
from harness.kube.cleanup import clean_cluster, clean_kube
from harness.kube.heartbeat import LEASE_DURATION_S, lease_manifest, utc_now
from harness.kube.objects import managed_labels


def make_run(cluster: Cluster, run: str, renewed_s_ago: float | None) -> None:
    """A run's namespace and Node as a run leaves them, with a Lease last renewed
    `renewed_s_ago` seconds ago (None: no Lease, a run from before leases)."""
    namespace = f"svc-lb-{run}"
    cluster.core.create_namespace({"metadata": {"name": namespace, "labels": managed_labels(run)}})
    cluster.core.create_node({"metadata": {"name": f"{run}-n", "labels": managed_labels(run)}})
    if renewed_s_ago is not None:
        renewed = utc_now() - timedelta(seconds=renewed_s_ago)
        CoordinationV1Api(cluster.api_client).create_namespaced_lease(
            namespace, lease_manifest(namespace, run, renewed)
        )


def test_deletes_labelled_namespaces_and_nodes_only(cluster: Cluster) -> None:
    core = cluster.core
    core.create_namespace(
        {"metadata": {"name": "svc-lb-hkdead1", "labels": managed_labels("hkdead1")}}
    )
    core.create_namespace({"metadata": {"name": "users-own", "labels": {"app": "x"}}})
    core.create_node(
        {"metadata": {"name": "hkdead1-node-1", "labels": managed_labels("hkdead1", "node")}}
    )
    core.create_node({"metadata": {"name": "real-worker"}})
    # the mock ignores label selectors (as some servers might): the label is checked again here
    removed = clean_cluster(cluster).removed
    assert removed == ["namespace/svc-lb-hkdead1", "node/hkdead1-node-1"]
    assert [n.metadata.name for n in core.list_namespace().items] == ["users-own"]
    assert [n.metadata.name for n in core.list_node().items] == ["real-worker"]
    assert clean_cluster(cluster).removed == []


def test_a_prefix_spares_other_runs_a_decoy_namespace_and_nodes(cluster: Cluster) -> None:
    core = cluster.core
    for run in ("hkdead1", "hkdead2", "hklive9"):
        core.create_namespace(
            {"metadata": {"name": f"svc-lb-{run}", "labels": managed_labels(run)}}
        )
        core.create_node({"metadata": {"name": f"{run}-n", "labels": managed_labels(run, "node")}})
    # a decoy: the harness's name and managed-by label, but another run's label
    core.create_namespace({"metadata": {"name": "svc-lb-hkdead1x", "labels": managed_labels("x")}})
    removed = clean_cluster(cluster, prefix="hkdead1").removed
    assert removed == ["namespace/svc-lb-hkdead1", "node/hkdead1-n"]
    left = sorted(n.metadata.name for n in core.list_namespace().items)
    assert left == ["svc-lb-hkdead1x", "svc-lb-hkdead2", "svc-lb-hklive9"]
    cleaned = clean_cluster(cluster, prefix="hkdead")
    assert cleaned.removed == ["namespace/svc-lb-hkdead2", "node/hkdead2-n"]
    assert sorted(n.metadata.name for n in core.list_node().items) == ["hklive9-n"]


def test_a_live_runs_namespace_and_nodes_are_kept_without_a_prefix(cluster: Cluster) -> None:
    make_run(cluster, "hklive1", renewed_s_ago=3)  # the decoy: alive, on another machine
    make_run(cluster, "hkdead1", renewed_s_ago=LEASE_DURATION_S + 60)  # expired
    make_run(cluster, "hkold01", renewed_s_ago=None)  # from before leases
    cleaned = clean_cluster(cluster)
    assert cleaned.removed == [
        "namespace/svc-lb-hkdead1",
        "namespace/svc-lb-hkold01",
        "node/hkdead1-n",
        "node/hkold01-n",
    ]
    assert len(cleaned.kept) == 2, cleaned.kept
    assert cleaned.kept[0].startswith("namespace/svc-lb-hklive1: its run is alive (lease renewed")
    assert "s ago by " in cleaned.kept[0] and cleaned.kept[0].endswith("/hklive1)")
    assert cleaned.kept[1] == "node/hklive1-n: its run hklive1 is alive"
    assert [n.metadata.name for n in cluster.core.list_namespace().items] == ["svc-lb-hklive1"]
    assert [n.metadata.name for n in cluster.core.list_node().items] == ["hklive1-n"]


def test_a_lease_just_past_its_duration_is_still_kept_within_the_clock_allowance(
    cluster: Cluster,
) -> None:
    make_run(cluster, "hklive2", renewed_s_ago=LEASE_DURATION_S + 0.5)
    assert clean_cluster(cluster).removed == []
    later = datetime.now(UTC) + timedelta(seconds=5)
    # the server's Date wins over a local clock that runs ahead: still kept
    assert clean_cluster(cluster, wall=lambda: later).removed == []


def test_force_deletes_live_runs_too(cluster: Cluster) -> None:
    make_run(cluster, "hklive1", renewed_s_ago=1)
    cleaned = clean_cluster(cluster, force=True)
    assert cleaned.removed == ["namespace/svc-lb-hklive1", "node/hklive1-n"]
    assert cleaned.kept == []


def test_errors_are_one_line(tmp_path: object) -> None:
    with pytest.raises(UsageError):
        clean_kube("/nonexistent/kubeconfig")
    config = tmp_path / "kubeconfig"  # type: ignore[operator]
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    with pytest.raises(EnvironmentProblem, match="cannot reach the Kubernetes API server"):
        clean_kube(str(config))
