"""`--pods local`: the harness plays the kubelet for an API server that has none.

Against a bare control plane (a kwok cluster, or kube-apiserver with etcd and the controller
manager, no nodes), the harness:

1. creates one Node object per model node (`<run>-node-1`, `<run>-node-2`), labelled so that
   `harness clean --kube` finds them, and posts their status (Ready, the node's address) every
   10 s, as a kubelet does, so the node lifecycle controller never marks them NotReady;
2. binds each pod to its node by `spec.nodeName` at creation, runs it as a pod of the local
   cluster (`harness.local.cluster.LocalCluster`: a network namespace with the model's address,
   answering with its name and incarnation) and writes its status through the `pods/status`
   subresource: podIP, phase Running, the Ready condition;
3. turns readiness flips into status writes, and kills, exits and evictions into the removal of
   the pod's namespace (after the target's API write);
4. runs the proxy under test from `--proxy-command` inside the node namespace, with `{kubeconfig}`,
   `{node}` and `{namespace}` filled in, and reaches the API server from there through a loopback
   relay (`harness.kube.relay`): no route off the machine is added;
5. sends traffic from the local cluster's client namespaces, which route through the node
   namespace to the Service VIPs the API server allocated;
6. routes the cluster's Service range in the node namespace, as a real node's default route
   carries it (so kube-proxy's REJECT in filter FORWARD/OUTPUT sees untranslated packets to an
   empty Service): the range given (`service_cidr`), else the `networking.k8s.io/v1`
   ServiceCIDR objects where served (KEP-1880, v1.33+), else the harness's own; and when the
   API server allocates a ClusterIP outside every routed range (an older server with another
   `--service-cluster-ip-range`), the /12 around it as well (`service_allocated`).

What the kubelet writes follows `pkg/kubelet/status/status_manager.go` (status via the status
subresource, the Ready condition mirroring readiness) and kwok's pod stage for "running".

Nothing outside the harness's namespace is touched except its own Node objects.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import string
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from harness.errors import EnvironmentProblem, UsageError
from harness.kube.api import MERGE_PATCH
from harness.kube.metrics import bind_address, read_in_netns
from harness.kube.objects import managed_labels
from harness.kube.relay import Relay, proxy_kubeconfig, relayed_server, server_address
from harness.kube.scope import Scope
from harness.kube.traffic import Exec, run_batch
from harness.model.objects import NODES, PROXY_NODE, Pod
from harness.model.state import POD_CIDR, SERVICE_CIDR
from harness.proxies.process import netns_argv
from harness.traffic import TrafficRequest, TrafficSample

NODE_ADDRESS = str(POD_CIDR.network_address + 1)  # the node namespace's bridge address
HEARTBEAT_S = 10.0  # the kubelet's default nodeStatusUpdateFrequency
PLACEHOLDERS = ("kubeconfig", "node", "namespace")
PROXY_NAME = "proxy-command"
DERIVED_PREFIX_LENGTH = 12  # kubeadm's default Service range size, the widest usual default


def range_around(address: str) -> str:
    """The /12 holding `address` (kubeadm's default Service range size: a wider route in the
    node namespace carries only Service traffic there)."""
    return str(ipaddress.IPv4Network(f"{address}/{DERIVED_PREFIX_LENGTH}", strict=False))


def service_ranges(cluster: Any, given: str | None = None) -> tuple[tuple[str, ...], str]:
    """The cluster's IPv4 Service ranges and how they were found (for the log).

    In order: `given` (UsageError if it is not an IPv4 network); the ServiceCIDR objects'
    `spec.cidrs` (networking.k8s.io/v1, served from v1.33; skipped where not served or not
    allowed: `list servicecidrs`, deploy/rbac.yaml); else the harness's own `SERVICE_CIDR`
    (`LocalKubelet.service_allocated` then adds the range of a VIP outside it). Reads only; an
    API refusal is a reason to try the next source, never an error.
    """
    if given:
        try:
            network = ipaddress.IPv4Network(given, strict=False)
        except ValueError:
            raise UsageError(
                f"service_cidr {given!r} is not an IPv4 range (write it as 10.96.0.0/12)"
            ) from None
        return (str(network),), "as given"
    from kubernetes import client

    try:
        listing = client.NetworkingV1Api(cluster.api_client).list_service_cidr(_request_timeout=10)
        cidrs = [
            cidr
            for item in listing.items or []
            for cidr in (getattr(item.spec, "cidrs", None) or [])
            if ":" not in cidr
        ]
        if cidrs:
            return tuple(sorted(set(cidrs))), "from the ServiceCIDR objects"
    except Exception:  # not served (before v1.33), not allowed, or no such API: next source
        pass
    return (str(SERVICE_CIDR),), "the harness's default (the cluster shows none)"


class LocalPods(Protocol):
    """The part of `harness.local.cluster.LocalCluster` the kubelet uses."""

    @property
    def node_netns(self) -> str: ...

    @property
    def clients(self) -> Mapping[str, Any]: ...  # client name -> object with `netns`

    def open(self) -> None: ...

    def close(self) -> None: ...

    def add_pods(self, pods: Sequence[Pod]) -> Sequence[Any]: ...

    def remove_pods(self, handles: Sequence[Any]) -> None: ...


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_manifest(name: str, run: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {**managed_labels(run, "node"), "kubernetes.io/hostname": name},
        },
    }


def node_status() -> dict[str, Any]:
    """A Ready node whose address is the node namespace's (what kube-proxy reads as node IP)."""
    now = _now()
    return {
        "status": {
            "addresses": [{"type": "InternalIP", "address": NODE_ADDRESS}],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        }
    }


def pod_status(pod: Pod, ready: bool, image: str) -> dict[str, Any]:
    """The status a kubelet writes for a running pod with the given readiness."""
    assert pod.ip is not None, f"pod {pod.name} has no address"
    now = _now()
    flag = "True" if ready else "False"
    return {
        "status": {
            "phase": "Running",
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}],
            "hostIP": NODE_ADDRESS,
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {
                    "name": "netexec",
                    "image": image,
                    "imageID": "",
                    "ready": ready,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
            ],
        }
    }


def fill_command(command: str, values: Mapping[str, str]) -> str:
    """`command` with `{kubeconfig}`, `{node}`, `{namespace}` filled; UsageError for others."""
    fields = {name for _, name, _, _ in string.Formatter().parse(command) if name is not None}
    unknown = fields - set(PLACEHOLDERS)
    if unknown:
        raise UsageError(
            f"--proxy-command has unknown placeholder(s) {', '.join(sorted(unknown))};"
            f" known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        )
    try:
        return command.format(**values)
    except (ValueError, IndexError) as error:
        raise UsageError(f"--proxy-command is not a valid template: {error}") from None


def local_exec(netns: str, argv: Sequence[str], timeout_s: float) -> str:
    """Run `argv` inside the client namespace `netns` and return its stdout."""
    try:
        result = subprocess.run(
            netns_argv(netns, argv),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        output = error.stdout
        return output.decode() if isinstance(output, bytes) else (output or "")
    except OSError as error:
        raise EnvironmentProblem(f"cannot run a client in {netns}: {error}") from None
    return result.stdout


class LocalKubelet:
    """The kubelet of the harness's own Nodes, running pods in the local cluster.

    `local_factory(prefix, clients)` builds the local cluster (`LocalCluster` by default);
    `proxy_factory(argv, netns, log)` the proxy process (`NetnsProcess` by default); tests pass
    fakes for both. `exec_function(netns, argv, timeout_s)` runs a client's request loop.
    """

    def __init__(
        self,
        scope: Scope,
        workdir: Path,
        proxy_command: str | None = None,
        local_factory: Callable[[str, Sequence[str]], LocalPods] | None = None,
        proxy_factory: Callable[[list[str], str, Path], Any] | None = None,
        exec_function: Exec = local_exec,
        service_cidr: str | None = None,
    ) -> None:
        """The local cluster's prefix is the run's (`scope.placement.run`). `service_cidr`
        overrides the Service range found in the cluster (`service_ranges`); it is found, and
        routed, only for the default local cluster (a given `local_factory` builds its own)."""
        self._scope = scope
        self._cluster = scope.cluster
        self._workdir = workdir
        self._proxy_command = proxy_command
        self._local_factory = local_factory
        self._service_cidr = service_cidr
        self.service_ranges: tuple[str, ...] = ()
        self._proxy_factory = proxy_factory or _default_proxy_process
        self._exec = exec_function
        self._local: LocalPods | None = None
        self._relay: Relay | None = None
        self._proxy: Any = None
        self._proxy_argv: list[str] = []
        self._handles: dict[str, Any] = {}
        self._created_nodes: list[str] = []
        self._stopping = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="node-heartbeat", daemon=True)
        self.nodes: Mapping[str, str] | None = {n: f"{scope.placement.run}-{n}" for n in NODES}

    @property
    def namespace(self) -> str:
        return self._scope.namespace

    @property
    def node_netns(self) -> str | None:
        """The node namespace the proxy runs in, where its rules live; None before `start()`."""
        return self._local.node_netns if self._local is not None else None

    def client_address(self, client: str) -> str | None:
        """The source address of `client`'s requests (None if unknown). Reads only."""
        found = self._local.clients.get(client) if self._local is not None else None
        address = getattr(found, "address", None)
        return str(address) if address else None

    def client_netns(self, client: str) -> str | None:
        """The network namespace `client` sends from (None if unknown): the kube target's UDP
        requests leave from it (`harness.kube.datagrams`). Reads only."""
        found = self._local.clients.get(client) if self._local is not None else None
        netns = getattr(found, "netns", None)
        return str(netns) if netns else None

    # -- start and stop -----------------------------------------------------------------------
    def start(self) -> None:
        """Create the Nodes, the local cluster, the relay and the proxy process.

        On failure, whatever was made is removed again before the error propagates.
        """
        try:
            self._create_nodes()
            self._heartbeat.start()
            factory = self._local_factory
            if factory is None:
                self.service_ranges, _ = service_ranges(self._cluster, self._service_cidr)
                factory = functools.partial(
                    _default_local_cluster, service_ranges=self.service_ranges
                )
            self._local = factory(self._scope.placement.run, self._scope.clients)
            self._local.open()
            if self._proxy_command:
                self._start_proxy(self._proxy_command)
        except BaseException:
            self.close()
            raise

    def _create_nodes(self) -> None:
        assert self.nodes is not None
        for name in self.nodes.values():
            self._cluster.call(
                "create nodes (cluster scope)",
                self._cluster.core.create_node,
                node_manifest(name, self._scope.placement.run),
            )
            self._created_nodes.append(name)
        self._post_node_status()

    def _post_node_status(self) -> None:
        for name in list(self._created_nodes):
            self._cluster.call(
                "patch nodes/status (cluster scope)",
                self._cluster.core.patch_node_status,
                name,
                node_status(),
                _content_type=MERGE_PATCH,
            )

    def _start_proxy(self, command: str) -> None:
        assert self._local is not None and self.nodes is not None
        host, port = server_address(self._cluster.server)
        self._relay = Relay(self._local.node_netns, (host, port), port)
        self._relay.start()
        server, tls_name = relayed_server(self._cluster.server, port)
        kubeconfig = proxy_kubeconfig(
            self._workdir / "proxy-kubeconfig",
            self._cluster.configuration,
            server,
            tls_name,
            self.namespace,
        )
        filled = fill_command(
            command,
            {
                "kubeconfig": str(kubeconfig),
                "node": self.nodes[PROXY_NODE],
                "namespace": self.namespace,
            },
        )
        self._proxy_argv = ["/bin/sh", "-c", filled]
        self._proxy = self._proxy_factory(
            self._proxy_argv, self._local.node_netns, self._workdir / "proxy.log"
        )
        self._proxy.start()

    def restart_proxy(self) -> None:
        """Stop the proxy command's process and start the same command again in the node
        namespace, as kube-proxy restarts on a rollout, a crash or an OOM kill. The relay to the
        API server, the node's rules and its connection tracking stay. UsageError without a
        proxy command (there is no proxy process of the harness's to restart)."""
        if self._proxy is None or self._local is None:
            raise UsageError("restart-proxy needs --proxy-command under --pods local")
        self._proxy.stop()
        self._proxy = self._proxy_factory(
            self._proxy_argv, self._local.node_netns, self._workdir / "proxy.log"
        )
        self._proxy.start()

    def cut_api_connections(self) -> int:
        """Cut every connection the proxy holds to the API server through the relay
        (`Relay.cut`), which keeps listening: the proxy must reconnect, list and watch again.
        The number cut. UsageError without a proxy command (nothing of the harness's talks
        through the relay then)."""
        if self._proxy is None or self._relay is None:
            raise UsageError("cutting the API connection needs --proxy-command under --pods local")
        return self._relay.cut()

    def service_allocated(self, address: str) -> None:
        """The API server gave a Service the ClusterIP `address`: if no routed range holds it
        (a cluster whose range the API does not show), the node routes the /12 around it too,
        before any traffic is sent to it. Only the default local cluster routes."""
        local = self._require_local()
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            return
        route = getattr(local, "route_service_range", None)
        if route is None or any(ip in ipaddress.IPv4Network(r) for r in self.service_ranges):
            return
        cidr = range_around(address)
        route(cidr)
        self.service_ranges = (*self.service_ranges, cidr)

    def _beat(self) -> None:
        """Post the Nodes' status every HEARTBEAT_S, as a kubelet does: without it the node
        lifecycle controller marks them NotReady after its grace period (40 s) and their pods'
        Ready condition False (pkg/controller/nodelifecycle)."""
        while not self._stopping.wait(HEARTBEAT_S):
            try:
                self._post_node_status()
            except Exception:  # a missed beat is retried; the next real call reports problems
                continue

    def close(self) -> None:
        """Stop the proxy and relay, remove the local cluster, delete the Nodes. Idempotent."""
        self._stopping.set()
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        if self._local is not None:
            self._local.close()
            self._local = None
            self._handles.clear()
        while self._created_nodes:
            name = self._created_nodes.pop()
            self._cluster.call(
                "delete nodes (cluster scope)", self._cluster.core.delete_node, name, allow=(404,)
            )

    # -- pods ---------------------------------------------------------------------------------
    def pod_created(self, pod: Pod) -> None:
        """Run the pod locally with the model's address, then report it Running."""
        local = self._require_local()
        (handle,) = local.add_pods([pod])
        self._handles[pod.name] = handle
        self._write_status(pod, pod_status(pod, pod.ready, self._scope.placement.image))

    def set_ready(self, pod: Pod, ready: bool) -> None:
        self._write_status(pod, pod_status(pod, ready, self._scope.placement.image))

    def pod_stopped(self, pod: Pod) -> None:
        """The pod's processes end: its namespace goes (the API write was the target's)."""
        handle = self._handles.pop(pod.name, None)
        if handle is not None and self._local is not None:
            self._local.remove_pods([handle])

    def _write_status(self, pod: Pod, body: Mapping[str, Any]) -> None:
        self._cluster.call(
            f"patch pods/status in namespace {self.namespace}",
            self._cluster.core.patch_namespaced_pod_status,
            pod.name,
            self.namespace,
            body,
            _content_type=MERGE_PATCH,
        )

    # -- traffic and health -------------------------------------------------------------------
    def send(self, request: TrafficRequest, address: str, port: int) -> TrafficSample:
        local = self._require_local()
        client = local.clients.get(request.client)
        if client is None:
            raise UsageError(
                f"unknown client {request.client!r}; known: {', '.join(local.clients)}"
            )
        return run_batch(self._exec, client.netns, request, address, port, self._scope.clock)

    def check(self) -> None:
        """ProxyFailure (a violation by the proxy) if the proxy process has exited."""
        if self._proxy is not None and not self._proxy.alive():
            from harness.proxies.failure import ProxyFailure

            raise ProxyFailure(
                PROXY_NAME, f"exited with code {self._proxy.returncode()}", self._proxy.tail()
            )

    def proxy_metrics(self) -> str | None:
        """The proxy's metrics from inside the node namespace, at its command's
        `--metrics-bind-address` (kube-proxy's default 127.0.0.1:10249 without one)."""
        if self._local is None or self._proxy is None:
            return None
        return read_in_netns(self._local.node_netns, bind_address(self._proxy_command))

    def _require_local(self) -> LocalPods:
        if self._local is None:
            raise RuntimeError("the kubelet is not started")
        return self._local


def _default_local_cluster(
    prefix: str, clients: Sequence[str], service_ranges: Sequence[str]
) -> LocalPods:
    from harness.local.cluster import LocalCluster

    return LocalCluster(prefix, clients, service_ranges=service_ranges)


def _default_proxy_process(argv: list[str], netns: str, log: Path) -> Any:
    from harness.proxies.process import NetnsProcess

    return NetnsProcess(argv, netns=netns, log=log)
