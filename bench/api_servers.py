"""The API server a kube benchmark runs against, and what a run may leave in it.

`api_server()` yields a connection and a one-line description: a real cluster when
HARNESS_KUBECONFIG names a kubeconfig (the nightly workflow points it at kind), otherwise kmock,
the mock API server of tests/kube, started in a process of its own on 127.0.0.1 (so the
benchmark's CPU time is the harness's alone) with two Ready nodes and without its request log
(kept, kmock matches every request against all earlier ones: minutes at this size). kmock answers
from memory with no admission, storage or controllers, so a figure measured against it is the
harness's overhead plus a fast in-memory server's, not an API server's: the description says so,
and the figure file carries it.

`leftovers(cluster, namespace, run)` lists what of one run is still in the cluster (its
namespace, the objects in it, Nodes with its run label), after waiting on a watch (bounded) for a
terminating namespace to go. Reads only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import watch

from harness.kube.api import Cluster, connect, connect_url
from harness.kube.objects import RUN_LABEL
from harness.kube.traffic import Exec

KUBE_TESTS = Path(__file__).resolve().parents[1] / "tests" / "kube"
KMOCK_NOTE = (
    "kmock, a mock API server in a process of its own (in memory: no storage, admission or"
    " controllers): the kube figures are the harness's own overhead, not an API server's"
)
NAMESPACE_GONE_S = 120
KUBECONFIG = """apiVersion: v1
kind: Config
current-context: kmock
clusters: [{{name: kmock, cluster: {{server: "{server}"}}}}]
users: [{{name: anyone, user: {{}}}}]
contexts: [{{name: kmock, context: {{cluster: kmock, user: anyone}}}}]
"""
SERVE = """
import sys
sys.path.insert(0, sys.argv[1])
from mockapi import MockApiServer
server = MockApiServer(keep_requests=False)  # kmock's request log is quadratic
print(server.url, flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin (or dies)
server.stop()
"""


@dataclass
class ApiServer:
    """An open connection, its kubeconfig (for `harness clean --kube`), what it is (for the
    figure file) and, on kmock, the stand-ins for what the mock lacks: `kubelet` (entered while a
    target opens, so its client pods become ready) and `pod_exec`."""

    cluster: Cluster
    kubeconfig: str
    description: str
    mock: bool
    kubelet: Any = None
    pod_exec: Exec | None = None


@contextmanager
def api_server() -> Iterator[ApiServer]:
    """HARNESS_KUBECONFIG's cluster, or kmock (see the module docstring); closed at the end."""
    kubeconfig = os.environ.get("HARNESS_KUBECONFIG")
    with ExitStack() as stack:
        if kubeconfig:
            cluster = connect(kubeconfig)
            stack.callback(cluster.close)
            version = cluster.check()
            description = f"a real API server, {version}, at {cluster.server}"
            yield ApiServer(cluster, kubeconfig, description, False)
            return
        sys.path.insert(0, str(KUBE_TESTS))
        from fakecluster import FakeCluster, make_nodes

        url = stack.enter_context(_kmock_process())
        cluster = connect_url(url)
        stack.callback(cluster.close)
        make_nodes(cluster)
        fake = FakeCluster(url)
        kubeconfig = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "kubeconfig"
        kubeconfig.write_text(KUBECONFIG.format(server=url), encoding="utf-8")
        yield ApiServer(cluster, str(kubeconfig), KMOCK_NOTE, True, fake, fake.exec)


@contextmanager
def _kmock_process() -> Iterator[str]:
    """kmock serving from a child process (its stdin open while it should serve); its URL."""
    child = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", SERVE, str(KUBE_TESTS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        url = child.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"kmock did not start (said {url!r})")
        yield url
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def leftovers(cluster: Cluster, namespace: str, run: str) -> list[str]:
    """`kind/name` of everything of the run still in the cluster, after waiting up to
    NAMESPACE_GONE_S on a watch for its namespace to finish terminating."""
    _wait_namespace_gone(cluster, namespace)
    core = cluster.core
    found = [
        f"namespace/{n.metadata.name}"
        for n in core.list_namespace().items
        if n.metadata.name == namespace
    ]
    for kind, listing in (
        ("pod", core.list_namespaced_pod),
        ("service", core.list_namespaced_service),
        ("endpointslice", cluster.discovery.list_namespaced_endpoint_slice),
    ):
        found += [f"{kind}/{item.metadata.name}" for item in listing(namespace).items]
    found += [
        f"node/{node.metadata.name}"
        for node in core.list_node().items
        if (node.metadata.labels or {}).get(RUN_LABEL) == run
    ]
    return found


def _wait_namespace_gone(cluster: Cluster, namespace: str) -> None:
    """Return once `namespace` is gone, or after NAMESPACE_GONE_S: a watch on that one
    namespace (field selector, checked again here: kmock ignores it) from the listing's
    resourceVersion, so a deletion between the two is not missed; never a polling loop."""
    core = cluster.core
    selector = f"metadata.name={namespace}"
    listing = core.list_namespace(field_selector=selector)
    if not any(n.metadata.name == namespace for n in listing.items):
        return
    stream: Any = watch.Watch()
    for event in stream.stream(
        core.list_namespace,
        field_selector=selector,
        resource_version=listing.metadata.resource_version,
        timeout_seconds=NAMESPACE_GONE_S,
        _request_timeout=NAMESPACE_GONE_S + 10,
    ):
        item = event.get("object")
        if event.get("type") == "DELETED" and getattr(item.metadata, "name", None) == namespace:
            stream.stop()
