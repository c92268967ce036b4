"""`harness clean --kube`: only what carries the harness's label goes."""

from __future__ import annotations

import pytest

from harness.errors import EnvironmentProblem, UsageError
from harness.kube.api import Cluster
from harness.kube.cleanup import clean_cluster, clean_kube
from harness.kube.objects import managed_labels


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
    removed = clean_cluster(cluster)
    assert removed == ["namespace/svc-lb-hkdead1", "node/hkdead1-node-1"]
    assert [n.metadata.name for n in core.list_namespace().items] == ["users-own"]
    assert [n.metadata.name for n in core.list_node().items] == ["real-worker"]
    assert clean_cluster(cluster) == []


def test_a_prefix_spares_other_runs_a_decoy_namespace_and_nodes(cluster: Cluster) -> None:
    core = cluster.core
    for run in ("hkdead1", "hkdead2", "hklive9"):
        core.create_namespace(
            {"metadata": {"name": f"svc-lb-{run}", "labels": managed_labels(run)}}
        )
        core.create_node({"metadata": {"name": f"{run}-n", "labels": managed_labels(run, "node")}})
    # a decoy: the harness's name and managed-by label, but another run's label
    core.create_namespace({"metadata": {"name": "svc-lb-hkdead1x", "labels": managed_labels("x")}})
    removed = clean_cluster(cluster, prefix="hkdead1")
    assert removed == ["namespace/svc-lb-hkdead1", "node/hkdead1-n"]
    left = sorted(n.metadata.name for n in core.list_namespace().items)
    assert left == ["svc-lb-hkdead1x", "svc-lb-hkdead2", "svc-lb-hklive9"]
    assert clean_cluster(cluster, prefix="hkdead") == ["namespace/svc-lb-hkdead2", "node/hkdead2-n"]
    assert sorted(n.metadata.name for n in core.list_node().items) == ["hklive9-n"]


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
