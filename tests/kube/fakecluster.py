"""What a mock API server lacks: a kubelet, a Service IP allocator and an EndpointSlice controller.

`FakeCluster` polls the mock server through the official client (every 20 ms) and does, crudely,
what the control plane and a kubelet would do for the harness's namespace:

- gives every pod a uid (the API server's job) and, once, a Running status with an IP and the
  Ready condition its readiness file implies (the kubelet's job; `exec` flips the file);
- gives every Service a ClusterIP;
- writes one EndpointSlice per Service from the pods its selector matches, with the conditions of
  `podToEndpoint` (ready, serving, terminating; publishNotReadyAddresses).

`kubelet=False` leaves pods without status (an API server with no kubelets); `waiting_reason`
makes every container wait with that reason (an image that cannot be pulled); `data_plane=True`
answers the client request loops as a proxy would, from the slices. Graceful deletion is not
emulated by kmock (it removes a deleted pod at once) unless the mock server is made with
`graceful_pods=True`; then this removes each marked pod once its grace period has run out.

Also here: `eventually` (bounded polling) and `FakeLocal`, a stand-in for the local cluster.
"""

from __future__ import annotations

import datetime
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mockapi import GRACEFUL_FINALIZER

from harness.kube.api import Cluster, connect_url
from harness.kube.objects import READY_FILE

MERGE = "application/merge-patch+json"
USER_AGENT = "fakecluster"  # tells its requests from the harness's in the mock's log
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"  # as the controller writes it


def _now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeCluster:
    def __init__(
        self,
        url: str,
        namespace_prefix: str = "svc-lb-",
        kubelet: bool = True,
        waiting_reason: str | None = None,
    ) -> None:
        self.cluster = connect_url(url)
        self.cluster.api_client.user_agent = USER_AGENT
        self.namespace_prefix = namespace_prefix
        self.kubelet = kubelet
        self.waiting_reason = waiting_reason
        self.ready: dict[tuple[str, str], bool] = {}  # (namespace, pod) -> readiness file exists
        self.execs: list[tuple[str, list[str]]] = []
        self.exec_output = ""
        self.data_plane = False  # answer request loops as a proxy would, from the slices
        self.masquerade_local = False  # the data plane masquerades node ports under Local too
        self.health_counts_terminating = False  # health checks count serving terminating ones
        self._random = random.Random(0)
        self._written: dict[tuple[str, str], dict[str, Any]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next_ip = 10
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeCluster:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.cluster.close()

    # -- the exec a target would run through pods/exec ----------------------------------------
    def exec(self, pod: str, argv: Sequence[str], timeout_s: float) -> str:
        self.execs.append((pod, list(argv)))
        script = argv[-1]
        namespace = self._namespace()
        if script == f"touch {READY_FILE}":
            self._set_ready(namespace, pod, True)
        elif script == f"rm -f {READY_FILE}":
            self._set_ready(namespace, pod, False)
        elif self.data_plane and namespace is not None and "/healthz" in script:
            return self._health(namespace, script)
        elif self.data_plane and namespace is not None and "curl" in script:
            return self._proxy(namespace, pod, script)
        return self.exec_output

    def _proxy(self, namespace: str, client: str, script: str) -> str:
        """A crude kube-proxy: every request of a fresh-connection loop goes to a random usable
        endpoint of the Service behind the VIP (ready ones, else serving+terminating ones, as
        CategorizeEndpoints picks); none usable: refused (curl exit 7, then its reason line, as
        the script prints it). A loop to a node's InternalIP goes to the Service with that node
        port (`_node_port`)."""
        match = re.search(r"-lt (\d+) \]; do .* http://([\d.]+):(\d+)/hostname", script)
        assert match, f"not a fresh-connection loop: {script}"
        count, address, port = int(match.group(1)), match.group(2), int(match.group(3))
        services = self.cluster.core.list_namespaced_service(namespace).items
        nodes = self._node_addresses()
        if address in nodes:
            asks = "/clientip" in script
            return self._node_port(namespace, client, services, nodes, (count, address, port), asks)
        service = next((s for s in services if s.spec.cluster_ip == address), None)
        usable = self._usable(namespace, service, None)
        lines = []
        for _ in range(count):
            if usable:
                lines.append(f"{self._random.choice(usable)}\n0 0.001\n")
            else:
                lines.append("\n7 0.0001\n! Connection refused\n")
        return "".join(lines)

    def _health(self, namespace: str, script: str) -> str:
        """kube-proxy's healthCheckNodePort server (pkg/proxy/healthcheck/service_health.go),
        as the probe script prints it: the LoadBalancer Service under Local with that
        healthCheckNodePort answers 200 with the node's ready endpoints counted, 503 with none
        (`health_counts_terminating`: a broken proxy that counts serving terminating ones too);
        nothing listens on any other port (refused)."""
        match = re.search(r"http://([\d.]+):(\d+)/healthz", script)
        assert match, f"not a health probe: {script}"
        node = self._node_addresses()[match.group(1)]
        port = int(match.group(2))
        service = next(
            (
                s
                for s in self.cluster.core.list_namespaced_service(namespace).items
                if s.spec.type == "LoadBalancer"
                and s.spec.external_traffic_policy == "Local"
                and s.spec.health_check_node_port == port
            ),
            None,
        )
        if service is None:
            return "exit 7\n! Connection refused\n--- reply\n"
        slices = self.cluster.discovery.list_namespaced_endpoint_slice(namespace).items
        name = service.metadata.name
        local = [
            e
            for s in slices
            if (s.metadata.labels or {}).get("kubernetes.io/service-name") == name
            for e in s.endpoints or []
            if e.node_name == node
        ]
        count = len(
            {
                e.addresses[0]
                for e in local
                if e.conditions.ready or (self.health_counts_terminating and e.conditions.serving)
            }
        )
        body = json.dumps(
            {
                "service": {"namespace": namespace, "name": name},
                "localEndpoints": count,
                "serviceProxyHealthy": True,
            }
        )
        status = "200 OK" if count else "503 Service Unavailable"
        headers = "Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
        return f"exit 0\n--- reply\nHTTP/1.1 {status}\r\n{headers}\r\n{body}"

    def _usable(self, namespace: str, service: Any, node: str | None) -> list[str]:
        """The answers (`NAME--UID`) of the Service's usable endpoints, on `node` only if given."""
        if service is None:
            return []
        pods = {p.metadata.uid: p for p in self.cluster.core.list_namespaced_pod(namespace).items}
        slices = self.cluster.discovery.list_namespaced_endpoint_slice(namespace).items
        endpoints = [
            e
            for s in slices
            if (s.metadata.labels or {}).get("kubernetes.io/service-name") == service.metadata.name
            for e in s.endpoints or []
            if node is None or e.node_name == node
        ]
        ready = [e for e in endpoints if e.conditions.ready]
        chosen = ready or [
            e for e in endpoints if e.conditions.serving and e.conditions.terminating
        ]
        usable = []
        for e in chosen:
            owner = pods.get(e.target_ref.uid)
            if owner is not None:
                incarnation = owner.metadata.labels["svc-lb-harness/incarnation"]
                usable.append(f"{owner.metadata.name}--{incarnation}")
        return usable

    def _node_addresses(self) -> dict[str, str]:
        """InternalIP -> node name, of the nodes that have one."""
        found = {}
        for node in self.cluster.core.list_node().items:
            for address in (node.status.addresses if node.status else None) or []:
                if address.type == "InternalIP":
                    found[address.address] = node.metadata.name
        return found

    def _node_port(
        self,
        namespace: str,
        client: str,
        services: list[Any],
        nodes: dict[str, str],
        loop: tuple[int, str, int],
        asks_source: bool,
    ) -> str:
        """A node-port loop from the host client pod `client` to the node at `address`: under
        externalTrafficPolicy Local only that node's endpoints, the sending node's address seen
        (unless `masquerade_local`, a broken proxy), dropped (curl 28) when it has none while
        others exist; under Cluster any endpoint, seen from the target node. The `/clientip`
        transfer is answered when the script asks it (`asks_source`)."""
        count, address, port = loop
        service = next(
            (s for s in services if any(p.node_port == port for p in s.spec.ports or [])), None
        )
        local = service is not None and service.spec.external_traffic_policy == "Local"
        usable = self._usable(namespace, service, nodes[address] if local else None)
        sender = self.cluster.core.read_namespaced_pod(client, namespace).spec.node_name
        sender_ip = next(ip for ip, name in nodes.items() if name == sender)
        seen = sender_ip if local and not self.masquerade_local else address
        lines = []
        for _ in range(count):
            if usable:
                answer = f"{self._random.choice(usable)}\n0 0.001\n"
                if asks_source:
                    answer += f"{seen}:40000\n0 0.001\n"
                lines.append(answer)
            elif local and self._usable(namespace, service, None):
                lines.append("\n28 0.5\n")
            else:
                lines.append("\n7 0.0001\n! Connection refused\n")
        return "".join(lines)

    def _set_ready(self, namespace: str | None, pod: str, ready: bool) -> None:
        if namespace is None:
            return
        with self._lock:
            self.ready[(namespace, pod)] = ready
        self._write_status(namespace, pod, ready)

    # -- the loop -----------------------------------------------------------------------------
    def _namespace(self) -> str | None:
        listing = self.cluster.core.list_namespace()
        names = [
            n.metadata.name
            for n in listing.items
            if n.metadata.name.startswith(self.namespace_prefix)
        ]
        return names[-1] if names else None

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                namespace = self._namespace()
                if namespace is not None:
                    self._step(namespace)
            except Exception:  # the namespace went away mid-step; try again
                continue

    def _step(self, namespace: str) -> None:
        core = self.cluster.core
        pods = core.list_namespaced_pod(namespace).items
        for pod in pods:
            self._end_grace(namespace, pod)
            if not pod.metadata.uid:
                core.patch_namespaced_pod(
                    pod.metadata.name,
                    namespace,
                    {"metadata": {"uid": str(uuid.uuid4())}},
                    _content_type=MERGE,
                )
            if self.kubelet and (pod.status is None or not pod.status.phase):
                command = " ".join(pod.spec.containers[0].command or [])
                role = (pod.metadata.labels or {}).get("svc-lb-harness/role")
                ready = role != "backend" or f"touch {READY_FILE}" in command
                with self._lock:
                    self.ready.setdefault((namespace, pod.metadata.name), ready)
                    ready = self.ready[(namespace, pod.metadata.name)]
                self._write_status(namespace, pod.metadata.name, ready)
        for service in core.list_namespaced_service(namespace).items:
            if not service.spec.cluster_ip:
                self._next_ip += 1
                core.patch_namespaced_service(
                    service.metadata.name,
                    namespace,
                    {"spec": {"clusterIP": f"10.96.0.{self._next_ip}"}},
                    _content_type=MERGE,
                )
        self._write_slices(
            namespace,
            core.list_namespaced_service(namespace).items,
            core.list_namespaced_pod(namespace).items,
        )

    def _end_grace(self, namespace: str, pod: Any) -> None:
        """Remove a pod the mock only marked for deletion once its grace period is over."""
        metadata = pod.metadata
        finalizers = metadata.finalizers or []
        if metadata.deletion_timestamp is None or GRACEFUL_FINALIZER not in finalizers:
            return
        grace = datetime.timedelta(seconds=metadata.deletion_grace_period_seconds or 0)
        if datetime.datetime.now(datetime.UTC) < metadata.deletion_timestamp + grace:
            return
        kept = [f for f in finalizers if f != GRACEFUL_FINALIZER]
        self.cluster.core.patch_namespaced_pod(
            metadata.name, namespace, {"metadata": {"finalizers": kept}}, _content_type=MERGE
        )

    def _write_status(self, namespace: str, pod: str, ready: bool) -> None:
        self._next_ip += 1
        current = self.cluster.core.read_namespaced_pod(pod, namespace)
        ip = (
            current.status.pod_ip if current.status else None
        ) or f"10.244.1.{self._next_ip % 250}"
        flag = "True" if ready else "False"
        container: dict[str, Any] = {
            "name": "c",
            "image": "x",
            "imageID": "",
            "ready": ready,
            "restartCount": 0,
            "state": {"running": {}},
        }
        if self.waiting_reason:
            container["state"] = {
                "waiting": {"reason": self.waiting_reason, "message": 'failed to pull image "nope"'}
            }
        status = {
            "phase": "Failed" if current.status and current.status.phase == "Failed" else "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": flag}],
            "containerStatuses": [container],
        }
        if self.waiting_reason:
            status["phase"] = "Pending"
            status["conditions"] = [{"type": "Ready", "status": "False"}]
        self.cluster.core.patch_namespaced_pod_status(
            pod, namespace, {"status": status}, _content_type=MERGE
        )

    def _write_slices(self, namespace: str, services: list[Any], pods: list[Any]) -> None:
        """The slices of every Service (`_slices`), each created once and then patched in place
        when it changes (a delete and create would leave a moment with no slice at all)."""
        discovery = self.cluster.discovery
        existing = {
            s.metadata.name for s in discovery.list_namespaced_endpoint_slice(namespace).items
        }
        wanted = set()
        for service in services:
            for body in self._slices(namespace, service, pods):
                name = body["metadata"]["name"]
                wanted.add(name)
                annotations = {"annotations": {TRIGGER_TIME: _now_rfc3339()}}
                if name not in existing:
                    created = {**body, "metadata": {**body["metadata"], **annotations}}
                    discovery.create_namespaced_endpoint_slice(namespace, created)
                elif self._written.get((namespace, name)) != body:
                    patch = {"endpoints": body["endpoints"], "ports": body["ports"]}
                    patch["metadata"] = annotations
                    discovery.patch_namespaced_endpoint_slice(
                        name, namespace, patch, _content_type=MERGE
                    )
                self._written[(namespace, name)] = body
        for name in existing - wanted:
            discovery.delete_namespaced_endpoint_slice(name, namespace)
            self._written.pop((namespace, name), None)

    def _slices(self, namespace: str, service: Any, pods: list[Any]) -> list[dict[str, Any]]:
        """The Service's slices: its selected pods' endpoints grouped by the ports they resolve,
        one slice per group as the EndpointSlice controller groups them (a pod that lacks a
        named port, or has it on another number, is in a slice of its own ports; a named
        targetPort resolves against container ports of the Service port's protocol), the first
        named `<service>-fake`; one empty slice when nothing is selected."""
        selector = service.spec.selector or {}
        publish = bool(service.spec.publish_not_ready_addresses)
        groups: dict[tuple[tuple[str, int, str], ...], list[dict[str, Any]]] = {}
        for pod in pods:
            labels = pod.metadata.labels or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            status = pod.status
            if status is None or not status.pod_ip or status.phase in ("Failed", "Succeeded"):
                continue
            pod_ready = any(
                c.type == "Ready" and c.status == "True" for c in status.conditions or []
            )
            terminating = pod.metadata.deletion_timestamp is not None
            serving = pod_ready  # podToEndpoint: the Ready condition only
            groups.setdefault(_resolved_ports(service, pod), []).append(
                {
                    "addresses": [status.pod_ip],
                    "conditions": {
                        "ready": publish or (serving and not terminating),
                        "serving": serving,
                        "terminating": terminating,
                    },
                    "targetRef": {
                        "kind": "Pod",
                        "name": pod.metadata.name,
                        "namespace": namespace,
                        "uid": pod.metadata.uid,
                    },
                    "nodeName": pod.spec.node_name,
                }
            )
        name = service.metadata.name
        return [
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-fake" + (f"-{index}" if index else ""),
                    "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": n, "port": number, "protocol": pr} for n, number, pr in ports],
            }
            for index, (ports, endpoints) in enumerate(groups.items() or [((), [])])
        ]


def _resolved_ports(service: Any, pod: Any) -> tuple[tuple[str, int, str], ...]:
    """(name, number, protocol) of every Service port that resolves on `pod`: a number as is, a
    name to the pod's container port of that name and the Service port's protocol."""
    resolved = []
    for port in service.spec.ports or []:
        protocol = port.protocol or "TCP"
        target = port.target_port
        number = (
            target
            if isinstance(target, int)
            else next(
                (
                    p.container_port
                    for p in pod.spec.containers[0].ports or []
                    if p.name == target and (p.protocol or "TCP") == protocol
                ),
                None,
            )
        )
        if number is not None:
            resolved.append((port.name or "", int(number), protocol))
    return tuple(resolved)


def make_nodes(cluster: Cluster, names: Sequence[str] = ("worker-a", "worker-b")) -> None:
    """Ready, schedulable nodes (a real cluster's workers)."""
    for name in names:
        cluster.core.create_node({"metadata": {"name": name}})
        cluster.core.patch_node_status(
            name,
            {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            _content_type=MERGE,
        )


def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@dataclass
class FakeClient:
    netns: str


@dataclass
class FakeLocal:
    node_netns: str = "hk00abc-node"
    clients: dict[str, FakeClient] = field(
        default_factory=lambda: {f"client-{i}": FakeClient(f"hk00abc-c{i}") for i in (1, 2, 3)}
    )
    pods: dict[str, Any] = field(default_factory=dict)
    opened: bool = False
    closed: bool = False

    def open(self) -> None:
        self.opened = True

    def close(self) -> None:
        self.closed = True

    def add_pods(self, pods: Sequence[Any]) -> list[str]:
        for pod in pods:
            self.pods[pod.name] = pod
        return [f"handle-{pod.name}" for pod in pods]

    def remove_pods(self, handles: Sequence[str]) -> None:
        for handle in handles:
            del self.pods[handle.removeprefix("handle-")]
