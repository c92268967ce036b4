"""Restarting a real cluster's kube-proxy, opt-in (`harness.kube.proxyrestart`; issue 12 item 4).

Against kmock with a fake DaemonSet controller (`FakeDaemonSet`: a kube-proxy pod per node in
kube-system, replaced by a new Ready one when deleted): without `--restart-cluster-proxy` the
kube target refuses `restart-proxy` with the reason; with it, `open()` proves the permission by a
dry-run delete (nothing deleted), and `restart-proxy` deletes every kube-proxy pod and returns
only when each node has a new Ready one. A 403, no kube-proxy pods, or a DaemonSet that does not
bring them back are one line each.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import pytest
from fakecluster import FakeCluster, make_nodes
from mockapi import MockApiServer

from harness.errors import EnvironmentProblem, UsageError
from harness.events import RestartProxy
from harness.kube.api import Cluster
from harness.kube.proxyrestart import PROXY_NAMESPACE, check_selector, replaced
from harness.registry import TargetOptions
from harness.targets.kube import KubeTarget

NODES = ("worker-a", "worker-b")
LABELS = {"k8s-app": "kube-proxy"}
ON = {"restart_cluster_proxy": "on", "startup_s": 5, "host_clients": "off"}


class FakeDaemonSet:
    """kube-proxy's DaemonSet, crudely: every 20 ms, a node without a live kube-proxy pod gets a
    new one, Ready at once (`revive=False`: none ever comes back)."""

    def __init__(self, cluster: Cluster, revive: bool = True) -> None:
        self.cluster = cluster
        self.revive = revive
        self._names = itertools.count(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeDaemonSet:
        self._fill()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    def pods(self) -> list[Any]:
        core = self.cluster.core
        return list(core.list_namespaced_pod(PROXY_NAMESPACE, label_selector="k8s-app").items)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            if self.revive:
                self._fill()

    def _fill(self) -> None:
        covered = {p.spec.node_name for p in self.pods()}
        for node in NODES:
            if node not in covered:
                self.cluster.core.create_namespaced_pod(
                    PROXY_NAMESPACE,
                    {
                        "metadata": {
                            "name": f"kube-proxy-{next(self._names)}",
                            "namespace": PROXY_NAMESPACE,
                            "labels": LABELS,
                            "uid": f"uid-{next(self._names)}",
                        },
                        "spec": {"nodeName": node, "containers": [{"name": "p", "image": "i"}]},
                        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                    },
                )


def opened(cluster: Cluster, url: str, **extra: Any) -> KubeTarget:
    target = KubeTarget(
        TargetOptions(extra={**ON, **extra}), cluster=cluster, pod_exec=lambda *a: ""
    )
    target.open()
    return target


@pytest.fixture
def daemonset(mock_api: MockApiServer, cluster: Cluster) -> Iterator[FakeDaemonSet]:
    make_nodes(cluster, list(NODES))
    with FakeCluster(mock_api.url), FakeDaemonSet(cluster) as fake:
        yield fake


def test_without_the_flag_restart_proxy_is_refused_with_the_reason() -> None:
    target = KubeTarget(TargetOptions())
    why = target.restart_unsupported
    assert why is not None and "--restart-cluster-proxy on --pods cluster (opt-in" in why
    assert "k8s-app=kube-proxy in kube-system" in why
    with pytest.raises(UsageError, match="restart-proxy: restarting the proxy needs"):
        target.apply(RestartProxy())
    assert (
        KubeTarget(TargetOptions(extra={"restart_cluster_proxy": "on"})).restart_unsupported is None
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            TargetOptions(pods="local", extra={"restart_cluster_proxy": "on"}),
            "is for --pods cluster",
        ),
        (TargetOptions(extra={"restart_cluster_proxy": "often"}), "must be on or off, not 'often'"),
        (TargetOptions(extra={"proxy_selector": "k8s-app in (a)"}), "--proxy-selector must be"),
    ],
)
def test_bad_restart_options_are_one_line_before_anything(
    options: TargetOptions, message: str
) -> None:
    with pytest.raises(UsageError, match=message) as raised:
        KubeTarget(options)
    assert "\n" not in str(raised.value)


def test_selectors_and_the_replacement_condition_are_pure() -> None:
    assert check_selector(" k8s-app=kube-proxy , tier=node") == "k8s-app=kube-proxy,tier=node"
    assert not replaced({}, {"u1": "worker-a"})
    assert replaced({}, {})


def test_restart_deletes_every_kube_proxy_pod_and_waits_for_new_ready_ones(
    mock_api: MockApiServer, cluster: Cluster, daemonset: FakeDaemonSet
) -> None:
    before = {p.metadata.name: p.spec.node_name for p in daemonset.pods()}
    target = opened(cluster, mock_api.url)
    try:
        assert target.restart_unsupported is None
        dry = [c for c in mock_api.calls() if c[0] == "DELETE" and "dryRun=All" in c[1]]
        assert len(dry) == 1 and f"/namespaces/{PROXY_NAMESPACE}/pods/" in dry[0][1]
        assert {p.metadata.name for p in daemonset.pods()} == set(before)  # nothing deleted
        target.apply(RestartProxy())
        after = {p.metadata.name: p.spec.node_name for p in daemonset.pods()}
        assert not set(after) & set(before)
        assert sorted(after.values()) == sorted(before.values()) == sorted(NODES)
        deleted = {
            path.rsplit("/", 1)[-1]
            for method, path in mock_api.calls()
            if method == "DELETE" and "dryRun" not in path and PROXY_NAMESPACE in path
        }
        assert deleted == set(before)
    finally:
        target.close()


def test_a_daemonset_that_does_not_bring_them_back_is_one_line(
    mock_api: MockApiServer, cluster: Cluster, daemonset: FakeDaemonSet
) -> None:
    target = opened(cluster, mock_api.url, proxy_restart_s=0.3)
    try:
        daemonset.revive = False
        with pytest.raises(
            EnvironmentProblem, match=r"were not replaced by Ready ones within 0\.3s"
        ):
            target.apply(RestartProxy())
    finally:
        target.close()


async def forbid_deleting_proxies(request: Any) -> aiohttp.web.StreamResponse | None:
    if request.method.name == "DELETE" and f"/namespaces/{PROXY_NAMESPACE}/" in request.url.path:
        return aiohttp.web.json_response(
            {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
             "message": 'pods "kube-proxy-1" is forbidden: cannot delete pods in kube-system'},
            status=403,
        )  # fmt: skip
    return None


def test_a_refused_delete_or_no_kube_proxy_ends_open_in_one_line(
    mock_api: MockApiServer, cluster: Cluster, daemonset: FakeDaemonSet
) -> None:
    mock_api.intercept = forbid_deleting_proxies
    target = KubeTarget(TargetOptions(extra=ON), cluster=cluster, pod_exec=lambda *a: "")
    with pytest.raises(EnvironmentProblem) as raised:
        target.open()
    assert str(raised.value).startswith("--restart-cluster-proxy: missing permission")
    assert "delete pods in namespace kube-system" in str(raised.value)
    assert str(target.restart_unsupported).startswith("--restart-cluster-proxy: missing perm")
    mock_api.intercept = None
    target = KubeTarget(
        TargetOptions(extra={**ON, "proxy_selector": "k8s-app=cilium"}),
        cluster=cluster,
        pod_exec=lambda *a: "",
    )
    with pytest.raises(EnvironmentProblem, match="no pods k8s-app=cilium in namespace kube-sys"):
        target.open()
    assert cluster.core.list_namespace().items == []  # the run's namespace went again


def test_the_command_line_turns_it_on_for_the_kube_target_only() -> None:
    from harness.cli import build_parser, target_options

    parser = build_parser()
    args = parser.parse_args(
        ["run", "--target", "kube", "--restart-cluster-proxy", "--proxy-selector", "a=b"]
    )
    extra = target_options(args, "kube").extra
    assert extra["restart_cluster_proxy"] is True and extra["proxy_selector"] == "a=b"
    assert "restart_cluster_proxy" not in target_options(parser.parse_args(["run"]), "kube").extra
    args = parser.parse_args(["run", "--target", "local:iptables", "--restart-cluster-proxy"])
    with pytest.raises(UsageError, match="--restart-cluster-proxy is for --target kube"):
        target_options(args, "local:iptables")
