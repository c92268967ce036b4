"""What runs the pods the API describes: real kubelets, or the harness playing one.

`PodRuntime` is the small interface the `kube` target drives after each API write. Two
implementations:

- `ClusterRuntime` (`--pods cluster`, the default): the cluster's kubelets run the pods. The
  harness only flips readiness (an exec that creates or removes the probe's file) and sends traffic
  from client pods. It maps the model's nodes onto the first two schedulable nodes.
- `harness.kube.kubelet.LocalKubelet` (`--pods local`): no kubelets; the harness runs each pod as
  a local network-namespace pod and writes its status.

Contract for every runtime: `start()` prepares (client pods, nodes) in the harness's namespace
and may wait for them; `pod_created` / `set_ready` / `pod_stopped` are called after the API write
of the same change and must change nothing but that pod; `send` changes no cluster state;
`check()` raises if the runtime can no longer run the test (a client pod that cannot start, a
proxy process that died); `proxy_metrics()` reads the proxy's Prometheus text if reachable and
changes nothing; `close()` releases what `start()` made outside the namespace, is idempotent,
and must not fail because the namespace is already gone.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from kubernetes import client
from kubernetes.stream import stream

from harness.clock import Clock
from harness.errors import EnvironmentProblem, UsageError
from harness.kube.api import Cluster
from harness.kube.metrics import METRICS_PORT
from harness.kube.objects import READY_FILE
from harness.kube.observe import Watched
from harness.kube.scope import Scope
from harness.kube.traffic import ClientPods, Exec
from harness.model.objects import NODES, Pod
from harness.traffic import TrafficRequest, TrafficSample

# Container states that will not get better by waiting (kubelet's waiting reasons).
FATAL_WAITING = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}


class PodRuntime(Protocol):
    nodes: Mapping[str, str] | None  # model node -> node name; None until start()

    def start(self) -> None: ...

    def pod_created(self, pod: Pod) -> None: ...

    def set_ready(self, pod: Pod, ready: bool) -> None: ...

    def pod_stopped(self, pod: Pod) -> None: ...

    def send(self, request: TrafficRequest, address: str, port: int) -> TrafficSample: ...

    def check(self) -> None: ...

    def proxy_metrics(self) -> str | None: ...

    def close(self) -> None: ...


def pod_problem(pod: Any) -> str | None:
    """Why a pod object cannot run, from its status, or None while it may still start."""
    status = pod.status
    if status is None:
        return None
    for container in status.container_statuses or []:
        waiting = container.state.waiting if container.state is not None else None
        if waiting is not None and waiting.reason in FATAL_WAITING:
            message = " ".join((waiting.message or "").split())[:200]
            return f"{waiting.reason}" + (f": {message}" if message else "")
    if status.phase == "Failed" and status.reason != "Evicted":
        return f"phase Failed ({status.reason or 'no reason'})"
    return None


def pod_is_ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status is not None else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


class PodExec:
    """Runs a command in a pod through `pods/exec` (a websocket), one at a time.

    `kubernetes.stream` swaps its ApiClient's transport while it runs, so exec gets a client of
    its own: the target's watches are never disturbed.
    """

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self._cluster = cluster
        self._namespace = namespace
        self._lock = threading.Lock()
        self._api: Any = None

    def __call__(self, pod: str, argv: Sequence[str], timeout_s: float) -> str:
        with self._lock:
            if self._api is None:
                self._api = client.CoreV1Api(client.ApiClient(self._cluster.configuration))
            result = self._cluster.call(
                f"create pods/exec in namespace {self._namespace}",
                stream,
                self._api.connect_get_namespaced_pod_exec,
                pod,
                self._namespace,
                command=list(argv),
                stderr=False,
                stdin=False,
                stdout=True,
                tty=False,
                _request_timeout=timeout_s,
            )
            return str(result or "")


def schedulable_nodes(cluster: Cluster) -> list[str]:
    """Names of Ready nodes that accept pods (no NoSchedule/NoExecute taint), sorted."""
    listing = cluster.call("list nodes (cluster scope)", cluster.core.list_node)
    names = []
    for node in listing.items if listing is not None else []:
        if node.spec is not None and node.spec.unschedulable:
            continue
        taints = (node.spec.taints if node.spec is not None else None) or []
        if any(t.effect in ("NoSchedule", "NoExecute") for t in taints):
            continue
        if not pod_is_ready_node(node):
            continue
        names.append(node.metadata.name)
    return sorted(names)


def pod_is_ready_node(node: Any) -> bool:
    conditions = (node.status.conditions if node.status is not None else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def map_nodes(available: Sequence[str], wanted: str | None) -> dict[str, str]:
    """The model's nodes onto cluster nodes: `wanted` ("a,b") or the first two available."""
    names = [n.strip() for n in wanted.split(",") if n.strip()] if wanted else list(available)
    if wanted:
        unknown = [n for n in names if n not in available]
        if unknown:
            raise UsageError(
                f"nodes {', '.join(unknown)} are not schedulable nodes of this cluster"
            )
    if len(names) < len(NODES):
        raise UsageError(
            f"the kube target needs {len(NODES)} schedulable nodes (the model's"
            f" {', '.join(NODES)}); this cluster has {len(names)}"
            f"{': ' + ', '.join(names) if names else ''}. Use deploy/kind.yaml (two workers)"
        )
    return dict(zip(NODES, names, strict=False))


class ClusterRuntime:
    """Real kubelets run the pods; the harness flips readiness by exec and sends from clients."""

    def __init__(
        self,
        scope: Scope,
        pods: Watched,
        wanted_nodes: str | None = None,
        startup_s: float = 180.0,
        exec_function: Exec | None = None,
    ) -> None:
        self._scope = scope
        self._pods = pods
        self._wanted_nodes = wanted_nodes
        self._startup_s = startup_s
        self._exec = exec_function or PodExec(scope.cluster, scope.namespace)
        self._client_pods: ClientPods | None = None
        self.nodes: Mapping[str, str] | None = None

    def start(self) -> None:
        """Map nodes, create the client pods and wait until they run (bounded by startup_s)."""
        self.nodes = map_nodes(schedulable_nodes(self._scope.cluster), self._wanted_nodes)
        self._client_pods = ClientPods(self._scope, self.nodes[NODES[0]], self._exec)
        self._client_pods.start()
        names = [self._client_pods.pod_name(c) for c in self._scope.clients]
        wait_until_ready(self._pods, names, self._startup_s, self._scope.clock)

    def pod_created(self, pod: Pod) -> None:
        """Nothing: the kubelet starts it."""

    def set_ready(self, pod: Pod, ready: bool) -> None:
        command = f"touch {READY_FILE}" if ready else f"rm -f {READY_FILE}"
        self._exec(pod.name, ["/bin/sh", "-c", command], 30.0)

    def pod_stopped(self, pod: Pod) -> None:
        """Nothing: the kubelet stops it."""

    def send(self, request: TrafficRequest, address: str, port: int) -> TrafficSample:
        if self._client_pods is None:
            raise RuntimeError("the runtime is not started")
        return self._client_pods.send(request, address, port)

    def check(self) -> None:
        if self._client_pods is None:
            return
        for name in (self._client_pods.pod_name(c) for c in self._scope.clients):
            pod = self._pods.get(name)
            problem = pod_problem(pod) if pod is not None else None
            if problem is not None:
                raise EnvironmentProblem(f"client pod {name} cannot run: {problem}")

    def proxy_metrics(self) -> str | None:
        """kube-proxy's metrics on node-1 through the API server's node proxy, or None when
        they are not reachable (loopback-bound metrics, or no `get nodes/proxy` permission)."""
        if self.nodes is None:
            return None
        cluster = self._scope.cluster
        text = cluster.call(
            "get nodes/proxy (cluster scope)",
            cluster.core.connect_get_node_proxy_with_path,
            f"{self.nodes[NODES[0]]}:{METRICS_PORT}",
            "metrics",
            allow=(403, 404, 500, 502, 503),
        )
        return text if isinstance(text, str) else None

    def close(self) -> None:
        """Nothing outside the namespace: the client pods go with it."""


def wait_until_ready(pods: Watched, names: Sequence[str], timeout_s: float, clock: Clock) -> None:
    """Wait until every pod in `names` is Ready; one-line EnvironmentProblem naming the first
    pod that cannot start (image pull, crash) or that is still not ready after `timeout_s`."""
    deadline_s = clock.now() + timeout_s
    generation = pods.generation
    while True:
        waiting = []
        for name in names:
            pod = pods.get(name)
            problem = pod_problem(pod) if pod is not None else None
            if problem is not None:
                raise EnvironmentProblem(f"pod {name} cannot start: {problem}")
            if pod is None or not pod_is_ready(pod):
                waiting.append(name)
        if not waiting:
            return
        remaining_s = deadline_s - clock.now()
        if remaining_s <= 0:
            raise EnvironmentProblem(
                f"pod {waiting[0]} did not become ready within {timeout_s:.0f}s"
                f" ({_describe(pods.get(waiting[0]))})"
            )
        generation = pods.wait_for_change(generation, min(remaining_s, 1.0))


def _describe(pod: Any) -> str:
    if pod is None:
        return "it was never seen"
    status = pod.status
    if status is None:
        return "no status: is a kubelet running on its node?"
    for container in status.container_statuses or []:
        waiting = container.state.waiting if container.state is not None else None
        if waiting is not None:
            return f"waiting: {waiting.reason}"
    return f"phase {status.phase or 'unknown'}"
