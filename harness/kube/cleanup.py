"""`harness clean --kube`: remove what killed runs left in a cluster, found by the harness's label.

A run deletes its own namespace and Nodes when it ends, also on SIGINT. A run killed with SIGKILL
cannot; its namespace and (in the kubelet-less mode) its Node objects keep the label
`app.kubernetes.io/managed-by=svc-lb-harness`. This deletes every namespace and Node carrying it,
and nothing else; given a run prefix (`harness clean --prefix P --kube`), only those whose run
label (`svc-lb-harness/run`) starts with it, as the local clean matches prefixes. Deleting a
namespace deletes everything in it (the namespace controller's job).

Do not run it without a prefix while another harness run uses the same cluster: it cannot tell a
live run's objects from a dead one's.
"""

from __future__ import annotations

from harness.kube.api import Cluster, connect
from harness.kube.objects import MANAGED_BY, MANAGED_BY_KEY, RUN_LABEL

SELECTOR = f"{MANAGED_BY_KEY}={MANAGED_BY}"


def clean_kube(
    kubeconfig: str | None = None, context: str | None = None, prefix: str | None = None
) -> list[str]:
    """Delete every harness namespace and Node (of runs whose prefix starts with `prefix`, if
    given); return what was deleted (`namespace/NAME`, `node/NAME`). One-line errors for an
    unreachable server or missing permissions. The caller checks `prefix` is a run prefix."""
    cluster = connect(kubeconfig, context, kind_hint=False)
    try:
        return clean_cluster(cluster, prefix)
    finally:
        cluster.close()


def clean_cluster(cluster: Cluster, prefix: str | None = None) -> list[str]:
    """`clean_kube` on an open connection. The labels are checked again on the client side:
    nothing without the harness's label, nor of a run outside `prefix`, is ever deleted."""

    def ours(item: object) -> bool:
        return _ours(item) and (prefix is None or _run(item).startswith(prefix))

    removed = []
    core = cluster.core
    namespaces = cluster.call("list namespaces", core.list_namespace, label_selector=SELECTOR)
    for item in namespaces.items if namespaces is not None else []:
        if ours(item) and item.status is not None and item.status.phase == "Terminating":
            removed.append(f"namespace/{item.metadata.name}")
        elif ours(item):
            cluster.call(
                "delete namespaces", core.delete_namespace, item.metadata.name, allow=(404, 409)
            )
            removed.append(f"namespace/{item.metadata.name}")
    nodes = cluster.call("list nodes", core.list_node, label_selector=SELECTOR)
    for item in nodes.items if nodes is not None else []:
        if ours(item):
            cluster.call("delete nodes", core.delete_node, item.metadata.name, allow=(404,))
            removed.append(f"node/{item.metadata.name}")
    return removed


def _labels(item: object) -> dict[str, str]:
    labels = getattr(getattr(item, "metadata", None), "labels", None) or {}
    return dict(labels)


def _ours(item: object) -> bool:
    return _labels(item).get(MANAGED_BY_KEY) == MANAGED_BY


def _run(item: object) -> str:
    return str(_labels(item).get(RUN_LABEL) or "")
