"""`harness clean --kube`: remove what killed runs left in a cluster, found by the harness's label.

A run deletes its own namespace and Nodes when it ends, also on SIGINT. A run killed with SIGKILL
cannot; its namespace and (in the kubelet-less mode) its Node objects keep the label
`app.kubernetes.io/managed-by=svc-lb-harness`. This deletes every namespace and Node carrying it,
and nothing else. Deleting a namespace deletes everything in it (the namespace controller's job).

Do not run it while another harness run uses the same cluster: it cannot tell a live run's objects
from a dead one's.
"""

from __future__ import annotations

from harness.kube.api import Cluster, connect
from harness.kube.objects import MANAGED_BY, MANAGED_BY_KEY

SELECTOR = f"{MANAGED_BY_KEY}={MANAGED_BY}"


def clean_kube(kubeconfig: str | None = None, context: str | None = None) -> list[str]:
    """Delete every harness namespace and Node; return what was deleted (`namespace/NAME`,
    `node/NAME`). One-line errors for an unreachable server or missing permissions."""
    cluster = connect(kubeconfig, context, kind_hint=False)
    try:
        return clean_cluster(cluster)
    finally:
        cluster.close()


def clean_cluster(cluster: Cluster) -> list[str]:
    """`clean_kube` on an open connection. The label is checked again on the client side."""
    removed = []
    core = cluster.core
    namespaces = cluster.call("list namespaces", core.list_namespace, label_selector=SELECTOR)
    for item in namespaces.items if namespaces is not None else []:
        if _ours(item) and item.status is not None and item.status.phase == "Terminating":
            removed.append(f"namespace/{item.metadata.name}")
        elif _ours(item):
            cluster.call(
                "delete namespaces", core.delete_namespace, item.metadata.name, allow=(404, 409)
            )
            removed.append(f"namespace/{item.metadata.name}")
    nodes = cluster.call("list nodes", core.list_node, label_selector=SELECTOR)
    for item in nodes.items if nodes is not None else []:
        if _ours(item):
            cluster.call("delete nodes", core.delete_node, item.metadata.name, allow=(404,))
            removed.append(f"node/{item.metadata.name}")
    return removed


def _ours(item: object) -> bool:
    labels = getattr(getattr(item, "metadata", None), "labels", None) or {}
    return bool(labels.get(MANAGED_BY_KEY) == MANAGED_BY)
