"""`harness clean --kube`: remove what killed runs left in a cluster, found by the harness's label.

A run deletes its own namespace and Nodes when it ends, also on SIGINT. A run killed with SIGKILL
cannot; its namespace and (in the kubelet-less mode) its Node objects keep the label
`app.kubernetes.io/managed-by=svc-lb-harness`. This deletes every namespace and Node carrying it,
and nothing else; given a run prefix (`harness clean --prefix P --kube`), only those whose run
label (`svc-lb-harness/run`) starts with it, as the local clean matches prefixes. Deleting a
namespace deletes everything in it (the namespace controller's job).

A live run is never touched, whichever machine it runs on: its namespace holds a Lease the run
renews every few seconds (`harness.kube.heartbeat`), and a namespace whose Lease is fresh is kept,
with its run's Nodes, and reported (`kept namespace/X: its run is alive (lease renewed 3 s ago by
host/pid/prefix)`). A namespace whose Lease expired, or that has none (a dead run's, or one made
before runs kept leases), is deleted. `force` deletes live runs' objects too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.kube.api import Cluster, connect
from harness.kube.heartbeat import WallClock, read_liveness, utc_now
from harness.kube.objects import MANAGED_BY, MANAGED_BY_KEY, RUN_LABEL

SELECTOR = f"{MANAGED_BY_KEY}={MANAGED_BY}"


@dataclass
class Cleaned:
    """What a clean did: `removed` (`namespace/NAME`, `node/NAME`) and `kept`, one line per
    live run's namespace or Node left alone (`namespace/NAME: its run is alive (...)`)."""

    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def clean_kube(
    kubeconfig: str | None = None,
    context: str | None = None,
    prefix: str | None = None,
    force: bool = False,
) -> Cleaned:
    """Delete the namespaces and Nodes of dead harness runs (of runs whose prefix starts with
    `prefix`, if given; of live ones too with `force`). One-line errors for an unreachable
    server or missing permissions. The caller checks `prefix` is a run prefix."""
    cluster = connect(kubeconfig, context, kind_hint=False)
    try:
        return clean_cluster(cluster, prefix, force)
    finally:
        cluster.close()


def clean_cluster(
    cluster: Cluster, prefix: str | None = None, force: bool = False, wall: WallClock = utc_now
) -> Cleaned:
    """`clean_kube` on an open connection. The labels are checked again on the client side:
    nothing without the harness's label, nor of a run outside `prefix`, is ever deleted. Every
    namespace's liveness is read before anything is deleted, so a missing permission stops the
    clean before it deletes anything; `wall` is the local clock, used only when the server sends
    no Date header."""

    def ours(item: object) -> bool:
        return _ours(item) and (prefix is None or _run(item).startswith(prefix))

    done = Cleaned()
    core = cluster.core
    namespaces = cluster.call("list namespaces", core.list_namespace, label_selector=SELECTOR)
    candidates = [item for item in (namespaces.items if namespaces else []) if ours(item)]
    live_runs: set[str] = set()
    doomed = []
    for item in candidates:
        name = item.metadata.name
        terminating = item.status is not None and item.status.phase == "Terminating"
        liveness = None if force or terminating else read_liveness(cluster, name, wall)
        if liveness is not None and liveness.alive:
            live_runs.add(_run(item))
            done.kept.append(f"namespace/{name}: {liveness.describe()}")
        else:
            doomed.append((name, terminating))
    for name, terminating in doomed:
        if not terminating:
            cluster.call("delete namespaces", core.delete_namespace, name, allow=(404, 409))
        done.removed.append(f"namespace/{name}")
    nodes = cluster.call("list nodes", core.list_node, label_selector=SELECTOR)
    for item in nodes.items if nodes is not None else []:
        if ours(item) and _run(item) in live_runs:
            done.kept.append(f"node/{item.metadata.name}: its run {_run(item)} is alive")
        elif ours(item):
            cluster.call("delete nodes", core.delete_node, item.metadata.name, allow=(404,))
            done.removed.append(f"node/{item.metadata.name}")
    return done


def _labels(item: object) -> dict[str, str]:
    labels = getattr(getattr(item, "metadata", None), "labels", None) or {}
    return dict(labels)


def _ours(item: object) -> bool:
    return _labels(item).get(MANAGED_BY_KEY) == MANAGED_BY


def _run(item: object) -> str:
    return str(_labels(item).get(RUN_LABEL) or "")
