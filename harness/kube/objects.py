"""Model state changes as Kubernetes API operations: manifests, patches and their order.

Pure: nothing here talks to a server. `plan(before, after)` compares two model states and lists
the API operations that turn a cluster in the first state into one in the second, so every event
(and any later one) maps to the API the same way the model applies it:

| model change                               | operation                                          |
|--------------------------------------------|----------------------------------------------------|
| a Service appears / disappears             | create / delete the Service                        |
| selector, affinity, publishNotReady, iTP   | JSON merge patch of the Service spec               |
| a pod appears                              | create the pod (bound to its node by `nodeName`)   |
| a pod starts terminating (graceful delete) | delete with a grace period of at least one hour    |
| a pod is gone (kill, exit, grace ran out)  | delete with grace 0 (the object goes at once)      |
| a pod is replaced by a new incarnation     | delete with grace 0, then create under the name    |
| labels change                              | JSON merge patch of `metadata.labels`              |
| a Service's opt-out label set / removed    | JSON merge patch of the Service's `metadata.labels`|
| readiness flips                            | the readiness switch (`SET_READY`)                 |
| the pod is evicted (phase Failed)          | a status write: phase Failed, reason Evicted       |

A grace period ends in the model only when model time passes it (a `wait` event), and the runner
may take longer or shorter in real time; so the API grace period is held long (at least
`MIN_API_GRACE_S`) and the harness ends it itself, with a delete of grace 0, when the model's
does: the kubelet never ends a termination on its own clock. Nothing else observes the value.

Eviction is a status write, not the Eviction API: the Eviction API (`pods/eviction`) deletes the
pod gracefully, whereas the model's `evict-pod` is the kubelet's node-pressure eviction, which
leaves a Failed pod object behind (e2e "should be rejected for evicted pods (no endpoints
exist)", kubernetes#109414 / PR #110255). What matters to the properties is the API state the
EndpointSlice controller reads (a terminal pod is never listed); whether a real kubelet then
stops the container at once is not relied on (to be confirmed on a real cluster).

Pods run `registry.k8s.io/e2e-test-images/agnhost netexec`, which answers `/hostname` (and, on
each UDP container port, the datagram `hostname`: `harness.kube.udp`; with `--kube-sctp`,
`Placement.sctp`, the message `hostname` on each SCTP container port: `harness.kube.sctp`) with the
pod's `spec.hostname`, set to `NAME--UID` (the model's incarnation uid), and keeps serving for the
whole grace period after SIGTERM (`--delay-shutdown`), as the e2e tests for terminating endpoints
do. Readiness is an exec probe on `/tmp/ready` that the harness creates or removes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness.errors import UsageError
from harness.model.objects import Affinity, Labels, Pod, Service
from harness.model.state import ClusterState

MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY = "svc-lb-harness"
RUN_LABEL = "svc-lb-harness/run"
ROLE_LABEL = "svc-lb-harness/role"
INCARNATION_LABEL = "svc-lb-harness/incarnation"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # set by the EndpointSlice controller
NOTHING_SELECTOR = {"svc-lb-harness/selects": "nothing"}

# the tag upstream e2e tests use (test/utils/image/manifest.go: configs[Agnhost])
DEFAULT_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.52"
READY_FILE = "/tmp/ready"
HOSTNAME_SEPARATOR = "--"
DELAY_SHUTDOWN_S = 86400  # serve until the kubelet's SIGKILL at the end of the grace period
MIN_API_GRACE_S = 3600  # the harness, not the kubelet, ends terminations (see above)
MAX_LABEL_VALUE = 63  # DNS-1123 label, also the limit of spec.hostname
POD_SECURITY_ENFORCE = "pod-security.kubernetes.io/enforce"
NODE_READER_ROLE = "node-rules"
HOST_CLIENT_ROLE = "host-client"
# any image with sleep, iptables-save and nft; netshoot is a common network-debugging image
DEFAULT_READER_IMAGE = "docker.io/nicolaka/netshoot:v0.13"
CLIENT_DIAL_PORT = 8080
"""The HTTP port of the client pods' netexec with SCTP on (`Placement.sctp`): its `/dial`
sends each SCTP request (`harness.kube.sctp`); the pod's own network, so no clash."""
READER_LIFETIME_S = 86400  # the pod ends itself a day later if nothing deletes it


def managed_labels(run: str, role: str | None = None) -> dict[str, str]:
    """The labels on everything the harness creates: found by `harness clean --kube`."""
    labels = {MANAGED_BY_KEY: MANAGED_BY, RUN_LABEL: run}
    if role:
        labels[ROLE_LABEL] = role
    return labels


def pod_hostname(pod: str, uid: str) -> str:
    """What the pod answers: `NAME--UID`; UsageError if it is not a DNS-1123 label."""
    hostname = f"{pod}{HOSTNAME_SEPARATOR}{uid}"
    if len(hostname) > MAX_LABEL_VALUE:
        raise UsageError(
            f"pod name {pod!r} is too long for the kube target: {hostname!r} must fit in"
            f" {MAX_LABEL_VALUE} characters"
        )
    return hostname


def parse_hostname(answer: str) -> tuple[str, str] | None:
    """(pod, uid) from a pod's answer `NAME--UID`, or None for anything else."""
    name, separator, uid = answer.strip().rpartition(HOSTNAME_SEPARATOR)
    if not separator or not name or not uid:
        return None
    return name, uid


# -- manifests ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """Where the harness's objects go: namespace, run label, image, and real node names."""

    namespace: str
    run: str
    image: str = DEFAULT_IMAGE
    nodes: Mapping[str, str] | None = None  # model node -> cluster node; None: the scheduler picks
    sctp: bool = False  # --kube-sctp: backends serve SCTP ports, client pods run netexec to dial

    def node_for(self, model_node: str) -> str | None:
        if self.nodes is None:
            return None
        try:
            return self.nodes[model_node]
        except KeyError:
            raise UsageError(
                f"the model places a pod on {model_node!r} but the cluster maps only"
                f" {', '.join(sorted(self.nodes))}"
            ) from None


def namespace_manifest(name: str, run: str, privileged: bool = False) -> dict[str, Any]:
    """The run's namespace. `privileged` (only with `--read-node-rules`) labels it for Pod
    Security Admission's privileged level, which the node-rule reader pods need (hostNetwork,
    a privileged container); without it the namespace takes the cluster's default level."""
    labels = managed_labels(run)
    if privileged:
        labels[POD_SECURITY_ENFORCE] = "privileged"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    }


def pod_manifest(pod: Pod, placement: Placement) -> dict[str, Any]:
    """A backend pod for one model incarnation.

    The container starts ready or not as the model says (by creating the readiness file before
    `netexec` starts); `terminationGracePeriodSeconds` is the API default, and each delete gives
    its own grace period.
    """
    labels = {
        **dict(pod.labels),
        **managed_labels(placement.run, "backend"),
        INCARNATION_LABEL: pod.uid,
    }
    # netexec serves HTTP on one port: the one named `http`, else the first
    first = pod.ports[0].port if pod.ports else 8080
    port = next((p.port for p in pod.ports if p.name == "http"), first)
    start = f"touch {READY_FILE} && " if pod.ready else ""
    start += _further_servers(pod, port)
    if placement.sctp:  # never an SCTP socket without --kube-sctp: it may load the sctp module
        start += _sctp_servers(pod)
    command = (
        f"{start}exec /agnhost netexec --http-port={port} --udp-port={_udp_port(pod, port)}"
        f" --delay-shutdown={DELAY_SHUTDOWN_S}"
    )
    spec: dict[str, Any] = {
        "hostname": pod_hostname(pod.name, pod.uid),
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "containers": [
            {
                "name": "netexec",
                "image": placement.image,
                "command": ["/bin/sh", "-c", command],
                "ports": [
                    {"name": p.name, "containerPort": p.port, "protocol": p.protocol}
                    for p in pod.ports
                ],
                "readinessProbe": {
                    "exec": {"command": ["cat", READY_FILE]},
                    "periodSeconds": 1,
                    "failureThreshold": 1,
                    "successThreshold": 1,
                },
            }
        ],
    }
    node = placement.node_for(pod.node)
    if node is not None:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": placement.namespace, "labels": labels},
        "spec": spec,
    }


def client_pod_manifest(name: str, placement: Placement, node: str | None) -> dict[str, Any]:
    """A client pod: agnhost `pause`, into which the harness execs its bounded request loops;
    with `placement.sctp` agnhost `netexec` on `CLIENT_DIAL_PORT` instead (no UDP
    server), whose `/dial` the exec'd loops ask for SCTP requests (`harness.kube.sctp`).

    It carries no model labels, so no Service selects it.
    """
    args = ["pause"]
    if placement.sctp:
        args = ["netexec", f"--http-port={CLIENT_DIAL_PORT}", "--udp-port=-1"]
    spec: dict[str, Any] = {
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "client", "image": placement.image, "args": args}],
    }
    if node is not None:
        spec["nodeName"] = node
    return _harness_pod(name, placement, "client", spec)


def _harness_pod(
    name: str, placement: Placement, role: str, spec: dict[str, Any]
) -> dict[str, Any]:
    """A pod of the harness's own (no model labels, so no Service selects it) in the run's
    namespace, labelled with the run and `role`."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": placement.namespace,
            "labels": managed_labels(placement.run, role),
        },
        "spec": spec,
    }


def node_reader_name(run: str, model_node: str) -> str:
    """The node-rule reader pod of `model_node`: `<run>-node-rules-<node>`, named by the run."""
    return f"{run}-node-rules-{model_node}"


def node_reader_manifest(
    name: str, placement: Placement, node: str, image: str = DEFAULT_READER_IMAGE
) -> dict[str, Any]:
    """A short-lived pod on cluster node `node` that lets the harness read that node's Service
    rules (`iptables-save`, `nft -j list ruleset`) through `pods/exec`
    (`harness.kube.node_rules`). Created only with `--read-node-rules`.

    It shares the node's network namespace (`hostNetwork`), where kube-proxy programs its rules,
    and runs privileged, as reading netfilter needs CAP_NET_ADMIN there; it only sleeps, bounded
    (`READER_LIFETIME_S`), and the harness deletes it at close (or with the namespace). Its
    image must have `sleep`, and `iptables-save` and/or `nft`.
    """
    container = {
        "name": "rules",
        "image": image,
        "command": ["sleep", str(READER_LIFETIME_S)],
        "securityContext": {"privileged": True},
    }
    spec = {**_host_network_spec(node, container), "tolerations": [{"operator": "Exists"}]}
    return _harness_pod(name, placement, NODE_READER_ROLE, spec)


def host_client_name(run: str, model_node: str) -> str:
    """The hostNetwork client pod on `model_node`'s node: `<run>-host-<node>`, named by the run."""
    return f"{run}-host-{model_node}"


def host_client_manifest(name: str, placement: Placement, node: str) -> dict[str, Any]:
    """A client pod in cluster node `node`'s own network namespace (`hostNetwork`), pinned to it
    by `nodeName`: agnhost `pause`, into which the harness execs its bounded request loops
    (`harness.kube.external`). Its connections leave from the node's own address, so one sent
    to another node's address on a node port arrives there from outside that node, as
    upstream's e2e NodePort tests send it (`NodePortService` from a host-network exec pod).

    Unprivileged: it binds no port and changes nothing on the node. Bounded like the reader
    pods (`activeDeadlineSeconds`); it goes at `close()` or with the run's namespace.
    """
    container = {"name": "client", "image": placement.image, "args": ["pause"]}
    return _harness_pod(name, placement, HOST_CLIENT_ROLE, _host_network_spec(node, container))


def _host_network_spec(node: str, container: dict[str, Any]) -> dict[str, Any]:
    """The spec of a harness pod that shares cluster node `node`'s network namespace: pinned,
    no Service links or token, no grace period, ending itself after `READER_LIFETIME_S`."""
    return {
        "nodeName": node,
        "hostNetwork": True,
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
        "activeDeadlineSeconds": READER_LIFETIME_S,
        "containers": [container],
    }


def _further_servers(pod: Pod, port: int) -> str:
    """Background netexec servers for the pod's other container port numbers (a multi-port
    pod's `admin`, a UDP port on another number, issue 12): each answers /hostname (TCP) and
    the datagram `hostname` (UDP) with the same pod hostname, so every port identifies its pod.
    A number the pod has for UDP only gets its HTTP server on an ephemeral port (`0`), which no
    Service targets. They run in the container's shell, beside the main server (`port`)."""
    tcp = {p.port for p in pod.ports if p.protocol == "TCP"}
    udp = {p.port for p in pod.ports if p.protocol == "UDP"}
    others = sorted((tcp | udp) - {port})
    return "".join(
        f"/agnhost netexec --http-port={n if n in tcp else 0} --udp-port={n if n in udp else -1} & "
        for n in others
    )


def _sctp_servers(pod: Pod) -> str:
    """Background netexec servers for the pod's SCTP container ports (`--kube-sctp`, issue 12
    item 3), one process per port: `--sctp-port=N` answers the message `hostname` with the pod
    hostname, like the UDP server. Each has its HTTP server on an ephemeral port (`0`) and no
    UDP server, so it clashes with no other server of the pod whatever the numbers. A separate
    process, never the main one: netexec's SCTP listener exits the process on any error (the
    node without the sctp module, `log.Fatalf`), which must not end the container."""
    numbers = sorted({p.port for p in pod.ports if p.protocol == "SCTP"})
    return "".join(
        f"/agnhost netexec --http-port=0 --udp-port=-1 --sctp-port={n} & " for n in numbers
    )


def _udp_port(pod: Pod, port: int) -> int:
    """The main netexec server's `--udp-port`: `port` when the pod has it for UDP (a pod
    answers UDP Services on its `udp` port, issue 12), else -1 (no UDP server)."""
    return port if any(p.protocol == "UDP" and p.port == port for p in pod.ports) else -1


def _ports(service: Service) -> list[dict[str, Any]]:
    """A Service's ports as the API writes them; a NodePort or LoadBalancer Service asks for
    the model's node ports (the API allocates a requested free one as given)."""
    ports = []
    for p in service.ports:
        port = {"name": p.name, "port": p.port, "targetPort": p.target_port, "protocol": p.protocol}
        if p.node_port is not None:
            port["nodePort"] = p.node_port
        ports.append(port)
    return ports


def _type_spec(service: Service) -> dict[str, Any]:
    """The type-dependent fields: type, and for NodePort and LoadBalancer
    externalTrafficPolicy and (LoadBalancer under Local) the model's healthCheckNodePort; for
    ClusterIP they are removed (null in a merge patch), as the API server requires."""
    if not service.type.external:
        return {"type": service.type.value, "externalTrafficPolicy": None,
                "healthCheckNodePort": None}  # fmt: skip
    return {
        "type": service.type.value,
        "externalTrafficPolicy": service.external_traffic_policy.value,
        "healthCheckNodePort": service.health_check_node_port,
    }


def _selector(service: Service) -> dict[str, str]:
    # A Service with no selector is not managed by the EndpointSlice controller at all
    # (endpointslice controller syncService: Selector == nil -> no slices), whereas the model's
    # empty selector selects nothing and keeps one empty slice. A selector no pod carries gives
    # exactly that.
    return dict(service.selector) if service.selector else dict(NOTHING_SELECTOR)


def _affinity_spec(service: Service) -> dict[str, Any]:
    config = None
    if service.session_affinity == Affinity.CLIENT_IP:
        config = {"clientIP": {"timeoutSeconds": service.affinity_timeout_s}}
    return {"sessionAffinity": service.session_affinity.value, "sessionAffinityConfig": config}


def _distribution_spec(service: Service) -> dict[str, Any]:
    """`trafficDistribution` when the Service has one (KEP-4444; the API server drops the field
    on a cluster before 1.30 or with the gate off); nothing otherwise."""
    if service.traffic_distribution is None:
        return {}
    return {"trafficDistribution": service.traffic_distribution}


def service_manifest(service: Service, placement: Placement) -> dict[str, Any]:
    """A Service of the model's type; the API server allocates the VIP (the model's is not
    requested), its node ports are the model's (`_ports`)."""
    spec: dict[str, Any] = {
        **{key: value for key, value in _type_spec(service).items() if value is not None},
        "selector": _selector(service),
        "ports": _ports(service),
        "publishNotReadyAddresses": service.publish_not_ready_addresses,
        "internalTrafficPolicy": service.internal_traffic_policy.value,
        **_affinity_spec(service),
        **_distribution_spec(service),
    }
    if spec["sessionAffinityConfig"] is None:
        del spec["sessionAffinityConfig"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service.name,
            "namespace": placement.namespace,
            "labels": {**dict(service.labels), **managed_labels(placement.run)},
        },
        "spec": spec,
    }


def service_patch(old: Service, new: Service) -> dict[str, Any] | None:
    """The JSON merge patch (RFC 7386) from `old` to `new`, or None if nothing differs.

    A key set to None removes it: that is how a selector loses a label, and a Service an
    opt-out label (`metadata.labels`, I13; the harness's own labels are never touched).
    """
    spec: dict[str, Any] = {}
    if old.selector != new.selector:
        before, after = _selector(old), _selector(new)
        spec["selector"] = {**{key: None for key in before if key not in after}, **after}
    if (old.session_affinity, old.affinity_timeout_s) != (
        new.session_affinity,
        new.affinity_timeout_s,
    ):
        spec.update(_affinity_spec(new))
    if old.publish_not_ready_addresses != new.publish_not_ready_addresses:
        spec["publishNotReadyAddresses"] = new.publish_not_ready_addresses
    if old.internal_traffic_policy != new.internal_traffic_policy:
        spec["internalTrafficPolicy"] = new.internal_traffic_policy.value
    if old.traffic_distribution != new.traffic_distribution:  # None removes the field
        spec["trafficDistribution"] = new.traffic_distribution
    if old.ports != new.ports:  # a merge patch replaces the whole list (SetServicePort)
        spec["ports"] = _ports(new)
    if (old.type, old.external_traffic_policy, old.health_check_node_port) != (
        new.type,
        new.external_traffic_policy,
        new.health_check_node_port,
    ):
        spec.update(_type_spec(new))
    patch: dict[str, Any] = {"spec": spec} if spec else {}
    patch.update(_labels_change(old.labels, new.labels) or {})
    return patch or None


def labels_patch(old: Pod, new: Pod) -> dict[str, Any] | None:
    """The merge patch of `metadata.labels` from `old` to `new` (None: unchanged)."""
    return _labels_change(old.labels, new.labels)


def _labels_change(old: Labels, new: Labels) -> dict[str, Any] | None:
    """The merge patch of `metadata.labels` from labels `old` to `new` (None: unchanged)."""
    before, after = dict(old), dict(new)
    if before == after:
        return None
    changes: dict[str, str | None] = {key: None for key in before if key not in after}
    changes.update({key: value for key, value in after.items() if before.get(key) != value})
    return {"metadata": {"labels": changes}}


def evicted_status(message: str = "evicted by the conformance harness") -> dict[str, Any]:
    """The status a kubelet writes when it evicts a pod (pkg/kubelet/eviction: phase Failed)."""
    return {
        "status": {
            "phase": "Failed",
            "reason": "Evicted",
            "message": message,
            "conditions": [{"type": "Ready", "status": "False", "reason": "PodFailed"}],
        }
    }


# -- operations -----------------------------------------------------------------------------------
class Verb(StrEnum):
    CREATE_SERVICE = "create-service"
    PATCH_SERVICE = "patch-service"
    DELETE_SERVICE = "delete-service"
    CREATE_POD = "create-pod"
    PATCH_POD = "patch-pod"
    DELETE_POD = "delete-pod"  # graceful: the pod terminates for `grace_s`
    REMOVE_POD = "remove-pod"  # grace 0: the pod is gone
    SET_READY = "set-ready"
    EVICT_POD = "evict-pod"


@dataclass(frozen=True)
class Operation:
    """One API change. `pod` / `service` is the model object after the change (before it for
    removals); `body` the manifest or patch; `grace_s` the grace period of a delete."""

    verb: Verb
    name: str
    body: Mapping[str, Any] | None = None
    pod: Pod | None = None
    service: Service | None = None
    grace_s: int | None = None
    ready: bool | None = None

    def __str__(self) -> str:
        extra = f" grace={self.grace_s}s" if self.grace_s is not None else ""
        extra += f" ready={self.ready}" if self.ready is not None else ""
        return f"{self.verb} {self.name}{extra}"


def plan(before: ClusterState, after: ClusterState, placement: Placement) -> list[Operation]:
    """The operations that take a cluster from model state `before` to `after`, in order.

    Order: Services that go away first, then pods that go away (so a recreated name is free),
    then new pods, changes to existing pods, and finally new and changed Services.
    """
    removals: list[Operation] = []
    creations: list[Operation] = []
    changes: list[Operation] = []
    for name in sorted(set(before.pods) | set(after.pods)):
        old, new = before.pods.get(name), after.pods.get(name)
        if old is not None and (new is None or new.uid != old.uid):
            removals.append(Operation(Verb.REMOVE_POD, name, pod=old, grace_s=0))
        if new is not None and (old is None or new.uid != old.uid):
            creations.append(
                Operation(Verb.CREATE_POD, name, pod_manifest(new, placement), pod=new)
            )
        elif old is not None and new is not None:
            changes.extend(_pod_changes(old, new, after))
    service_removals, service_changes = _service_operations(before, after, placement)
    return [*service_removals, *removals, *creations, *changes, *service_changes]


def _pod_changes(old: Pod, new: Pod, after: ClusterState) -> list[Operation]:
    operations = []
    patch = labels_patch(old, new)
    if patch is not None:
        operations.append(Operation(Verb.PATCH_POD, new.name, patch, pod=new))
    if new.phase.terminal and not old.phase.terminal:
        operations.append(Operation(Verb.EVICT_POD, new.name, evicted_status(), pod=new))
        return operations
    if new.ready != old.ready:
        operations.append(Operation(Verb.SET_READY, new.name, pod=new, ready=new.ready))
    if new.deletion_deadline_s is not None and old.deletion_deadline_s is None:
        grace = max(MIN_API_GRACE_S, math.ceil(new.deletion_deadline_s - after.now_s))
        operations.append(Operation(Verb.DELETE_POD, new.name, pod=new, grace_s=grace))
    return operations


def _service_operations(
    before: ClusterState, after: ClusterState, placement: Placement
) -> tuple[list[Operation], list[Operation]]:
    removals, changes = [], []
    for name in sorted(set(before.services) | set(after.services)):
        old, new = before.services.get(name), after.services.get(name)
        if new is None:
            removals.append(Operation(Verb.DELETE_SERVICE, name, service=old))
        elif old is None:
            changes.append(
                Operation(Verb.CREATE_SERVICE, name, service_manifest(new, placement), service=new)
            )
        else:
            patch = service_patch(old, new)
            if patch is not None:
                changes.append(Operation(Verb.PATCH_SERVICE, name, patch, service=new))
    return removals, changes
