"""deploy/rbac-restart-proxy.yaml grants exactly what `--restart-cluster-proxy` uses in kube-system.

On kmock with a fake kube-proxy DaemonSet (tests/kube/test_proxy_restart.py), a kube target with
the flag opens (its dry-run delete), restarts the proxy once and closes. Every request it sends
into kube-system must be granted by the Role, every permission the Role grants must be used, and
the Role with one permission less must fail the check. Requests in the run's own namespace are
deploy/rbac.yaml's business (tests/kube/test_rbac.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fakecluster import USER_AGENT, FakeCluster, make_nodes
from mockapi import MockApiServer
from test_proxy_restart import NODES, ON, FakeDaemonSet
from test_rbac import Permission, record

from harness.events import RestartProxy
from harness.kube.api import connect_url
from harness.kube.proxyrestart import PROXY_NAMESPACE
from harness.registry import TargetOptions
from harness.targets.kube import KubeTarget

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac-restart-proxy.yaml"
ROLE = "svc-lb-harness-restart-proxy"


def role_grants() -> set[Permission]:
    """The permissions the Role grants in kube-system (and that it is bound there to the
    harness's ServiceAccount)."""
    documents = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    role = next(d for d in documents if d["kind"] == "Role")
    binding = next(d for d in documents if d["kind"] == "RoleBinding")
    assert role["metadata"] == {"name": ROLE, "namespace": PROXY_NAMESPACE}
    assert binding["metadata"]["namespace"] == PROXY_NAMESPACE
    assert binding["roleRef"]["name"] == ROLE
    assert [(s["name"], s["namespace"]) for s in binding["subjects"]] == [
        ("svc-lb-harness", "svc-lb-harness-system")
    ]
    return {
        Permission(verb, resource, group)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def missing(used: list[frozenset[Permission]], grants: set[Permission]) -> list[str]:
    """One line per kube-system request `grants` does not allow. Pure."""
    return [", ".join(map(str, sorted(p - grants))) for p in used if p - grants]


@pytest.fixture(scope="module")
def used_in_kube_system() -> list[frozenset[Permission]]:
    mock = MockApiServer()
    cluster = connect_url(mock.url)
    daemon = connect_url(mock.url)
    daemon.api_client.user_agent = USER_AGENT  # the fake DaemonSet's requests are not the harness's
    try:
        make_nodes(cluster, list(NODES))
        with FakeCluster(mock.url), FakeDaemonSet(daemon):
            target = KubeTarget(TargetOptions(extra=ON), cluster=cluster, pod_exec=lambda *a: "")
            target.open()
            try:
                target.apply(RestartProxy())
            finally:
                target.close()
        return [
            entry.permissions
            for entry in record(mock).accesses
            if entry.namespace == PROXY_NAMESPACE
        ]
    finally:
        daemon.close()
        cluster.close()
        mock.stop()


def test_every_kube_system_request_of_a_restart_is_granted_and_every_grant_used(
    used_in_kube_system: list[frozenset[Permission]],
) -> None:
    grants = role_grants()
    assert used_in_kube_system and missing(used_in_kube_system, grants) == []
    assert set().union(*used_in_kube_system) == grants


@pytest.mark.parametrize("permission", sorted(role_grants()), ids=str)
def test_the_role_with_one_permission_less_fails_the_check(
    used_in_kube_system: list[frozenset[Permission]], permission: Permission
) -> None:
    found = missing(used_in_kube_system, role_grants() - {permission})
    assert found and all(str(permission) in line for line in found)
