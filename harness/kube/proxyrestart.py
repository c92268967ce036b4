"""Restarting a real cluster's kube-proxy for `restart-proxy` (issue 12 item 4; I16), opt-in.

Deleting the kube-proxy pods disrupts the cluster for everyone on it, so the kube target does it
only when told (`--restart-cluster-proxy`, extra option `restart_cluster_proxy=on`); the nightly
kind job turns it on. The pods are those of `kube-system` matching a label selector
(`k8s-app=kube-proxy`, the label kubeadm's and kind's DaemonSet puts on them; `--proxy-selector`
changes it for a cluster whose Service proxy is labelled otherwise).

`ClusterProxy.start()` watches those pods (a 403 on the list is one line naming the permission),
requires at least one, and proves the delete permission with a server-side dry-run delete of
one (authorization runs before the dry run, so a 403 says the same as a real delete would; nothing
is deleted). `restart()` deletes every pod it sees and waits, on the watch and bounded by
`wait_s`, until every node that had one has a new one (a uid not seen before) Ready and not
terminating: the DaemonSet's doing, never the harness's. The harness creates nothing in
`kube-system` and changes nothing there but these deletes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from harness.errors import EnvironmentProblem, UsageError
from harness.kube.api import Cluster
from harness.kube.observe import Watched
from harness.kube.runtime import pod_is_ready

PROXY_NAMESPACE = "kube-system"
PROXY_SELECTOR = "k8s-app=kube-proxy"
RESTART_WAIT_S = 120.0  # image already on the node: a DaemonSet pod is back in seconds
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_./]*=[-A-Za-z0-9_.]*$")
FLAG = "--restart-cluster-proxy"


def check_selector(text: str) -> str:
    """`text` if it is a label selector of `key=value` requirements joined by commas;
    UsageError, one line with an example, otherwise. Pure."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or not all(_REQUIREMENT.match(part) for part in parts):
        raise UsageError(
            f"--proxy-selector must be label requirements key=value[,key=value], not {text!r}"
            f" (kube-proxy's DaemonSet pods: {PROXY_SELECTOR})"
        )
    return ",".join(parts)


def _uid(pod: Any) -> str:
    return str(getattr(pod.metadata, "uid", None) or pod.metadata.name)


def _node(pod: Any) -> str | None:
    spec = getattr(pod, "spec", None)
    return getattr(spec, "node_name", None) if spec is not None else None


def replaced(cache: Mapping[str, Any], old: Mapping[str, str | None]) -> bool:
    """Whether every node of `old` (uid -> node) has a pod in `cache` that is not one of `old`,
    Ready and not being deleted. Pure."""
    fresh = {
        _node(pod)
        for pod in cache.values()
        if _uid(pod) not in old and pod_is_ready(pod) and not pod.metadata.deletion_timestamp
    }
    return set(old.values()) <= fresh


class ClusterProxy:
    """The cluster's kube-proxy pods, restarted on demand (module docstring)."""

    def __init__(
        self,
        cluster: Cluster,
        selector: str,
        wait_s: float = RESTART_WAIT_S,
        namespace: str = PROXY_NAMESPACE,
    ) -> None:
        self._cluster = cluster
        self.selector = check_selector(selector)
        self.wait_s = wait_s
        self.namespace = namespace
        self._pods: Watched | None = None
        self.restarts = 0

    @property
    def where(self) -> str:
        return f"pods {self.selector} in namespace {self.namespace}"

    def start(self) -> None:
        """Watch the pods, require one, prove the delete permission (module docstring).
        One-line EnvironmentProblem otherwise; `stop()` is safe after a failure."""
        self._pods = Watched(
            self._cluster,
            self._cluster.core.list_namespaced_pod,
            self.namespace,
            self.selector,
            f"{self.namespace} proxy pods",
        )
        self._pods.start()
        found = sorted(self._pods.items(), key=lambda pod: str(pod.metadata.name))
        if not found:
            raise EnvironmentProblem(
                f"no {self.where}: the cluster runs no kube-proxy there (a kube-proxy"
                " replacement?); give --proxy-selector, or drop " + FLAG
            )
        self._cluster.call(
            f"delete pods in namespace {self.namespace}",
            self._cluster.core.delete_namespaced_pod,
            found[0].metadata.name,
            self.namespace,
            dry_run="All",
            allow=(404,),
        )

    def restart(self) -> int:
        """Delete every proxy pod seen and wait until the DaemonSet has replaced each on its node
        with a Ready one; the number deleted. One-line EnvironmentProblem when they are not back
        within `wait_s`, or for a refused delete."""
        if self._pods is None:
            raise UsageError("the cluster's kube-proxy is not watched: open the target first")
        pods = self._pods.items()
        old = {_uid(pod): _node(pod) for pod in pods}
        for pod in pods:
            self._cluster.call(
                f"delete pods in namespace {self.namespace}",
                self._cluster.core.delete_namespaced_pod,
                pod.metadata.name,
                self.namespace,
                allow=(404,),
            )
        if not self._pods.wait_until(lambda cache: replaced(cache, old), self.wait_s):
            raise EnvironmentProblem(
                f"the {len(old)} deleted {self.where} were not replaced by Ready ones within"
                f" {self.wait_s:g}s: is the DaemonSet able to schedule them?"
            )
        self.restarts += 1
        return len(old)

    def stop(self) -> None:
        """Stop watching. Idempotent; deletes nothing."""
        pods, self._pods = self._pods, None
        if pods is not None:
            pods.stop()
