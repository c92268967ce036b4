"""The `kube` target: a real Kubernetes cluster driven through the official client.

`harness run --target kube [--kubeconfig FILE] [--context NAME] [--kind-cluster NAME]
[--pods cluster|local] [--proxy-command CMD] [--read-node-rules[=IMAGE]]`

Everything lives in a namespace the target creates (`svc-lb-<prefix>`, labelled
`app.kubernetes.io/managed-by=svc-lb-harness`) and deletes in `close()`; with `--pods local` it
also creates and deletes one Node object per model node. Nothing else in the cluster is touched.
While the run lives, a Lease in its namespace says so (`harness.kube.heartbeat`), so that
`harness clean --kube`, from any machine, leaves it alone.

Per step: the event is applied to the target's copy of the model, and `harness.kube.objects.plan`
turns the difference into API writes (create, merge patch, delete with a grace period, status
writes); the runtime (`harness.kube.runtime`) then does what a kubelet would not do by itself
(flip readiness) or, in the kubelet-less mode, everything a kubelet does. Observation reads the
EndpointSlice watch; traffic runs from client pods (or client namespaces) to the Service's
ClusterIP. Deadlines are the runner's (default 30 s, the e2e `KubeProxyEndpointLagTimeout`).

A UDP Service port is sent to with bounded `nc` loops from the same clients (`sends_udp`;
`harness.kube.udp`, `harness.kube.datagrams`: one fresh source port per flow; with `--pods local`
the client namespaces' own UDP client), and held UDP flows (`hold`, `hold_node_port`: a fixed
source port asked again by each later exec) make the target a `ConnectionHolder` for UDP only:
no TCP connection outlives an exec. SCTP is sent on `--pods cluster` only with `--kube-sctp`
(extra option `sctp`: each request one netexec `/dial` in a client pod, `harness.kube.sctp`; the
nodes need the sctp module, which the harness neither loads nor checks), never from the
hostNetwork clients (`host_unsent`), and without it `sctp` is unsupported (`KUBE_SCTP`); on
`--pods local` wherever this machine's kernel tracks SCTP (the client namespaces' SCTP client).

With `--pods cluster` on two or more nodes it also has a hostNetwork client pod on every mapped
node (`harness.kube.external`): NodePort traffic from outside a node (`external_node`: the client
on another node sends to the node's InternalIP), and a node's host network as a client
(`client_node`); so `node-port` and `every-node` are judged there (`node_names`,
`external_address`). With `--pods local` (one node namespace) and on a cluster whose model nodes
map onto one node they are not applicable, with the reason (`external_unsupported`).

The target is a `RuleOracle` where it can read the node's rules (`harness.kube.node_rules`):
always with `--pods local`, with `--read-node-rules` on a cluster with kubelets; `exact-balance`
is skipped with the reason (`rules_unsupported`) elsewhere or for a layout other than kube-proxy's.

Programming latency is measured by the runner from the API write to the first observed effect.
kube-proxy's own `network_programming_duration_seconds` and `sync_proxy_rules_duration_seconds`
histograms are the cross-check: read once the proxy has synced after `open()` and again at the
end (`proxy_metrics()`, `harness.kube.metrics.MetricsWindow`); see docs/kube.md.
"""

from __future__ import annotations

import atexit
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.clock import RealClock
from harness.errors import EnvironmentProblem, HarnessError, UsageError
from harness.events import (
    Event,
    OutOfWindow,
    RestartProxy,
    SetExternalIPs,
    StaleSnapshot,
    UnobservedChanges,
)
from harness.kube.api import MERGE_PATCH, Cluster, connect
from harness.kube.datagrams import NamespaceDatagrams, PodDatagrams
from harness.kube.external import HostClients, host_clients_problem, outside_of, switch
from harness.kube.healthprobe import in_model_terms
from harness.kube.heartbeat import RENEW_EVERY_S, Heartbeat
from harness.kube.kind import KindCluster
from harness.kube.loadgen import InClusterLocust
from harness.kube.metrics import (
    MetricsWindow,
    ProgrammingLatency,
    bind_address,
    wait_for_first_sync,
)
from harness.kube.metrics import parse as parse_metrics
from harness.kube.node_readers import NodeReaders
from harness.kube.node_rules import (
    LAYOUT_WAIT_S,
    Layout,
    Run,
    UnsupportedRules,
    backend_lookup,
    detect,
    netns_reader,
    wait_for_layout,
)
from harness.kube.objects import (
    DEFAULT_IMAGE,
    INCARNATION_LABEL,
    RUN_LABEL,
    SERVICE_NAME_LABEL,
    Operation,
    Placement,
    Verb,
    namespace_manifest,
    plan,
)
from harness.kube.observe import Incarnations, Watched, to_model_slice, wait_for_names
from harness.kube.proxy_sync import sync_state_from_metrics
from harness.kube.proxyrestart import FLAG as RESTART_FLAG
from harness.kube.proxyrestart import (
    PROXY_NAMESPACE,
    PROXY_SELECTOR,
    RESTART_WAIT_S,
    ClusterProxy,
    check_selector,
)
from harness.kube.runtime import ClusterRuntime, PodExec, PodRuntime, pod_is_ready, pod_problem
from harness.kube.scope import Scope
from harness.kube.sctp import FLAG as SCTP_FLAG
from harness.kube.sctp import HOST_SCTP, SCTP
from harness.kube.sctp import send_batch as send_sctp
from harness.kube.traffic import ClientPods, Exec
from harness.kube.udp import TCP, UDP
from harness.kube.writer import Writer
from harness.model.objects import DEFAULT_NAMESPACE, PROXY_NODE, EndpointSlice, Pod
from harness.model.state import ClusterState
from harness.protocols import KUBE_EXTERNAL_IPS, KUBE_SCTP, SCTP_FEATURE, sctp_unsupported
from harness.proxies.base import SyncState
from harness.proxies.rules.tracing import Packet
from harness.registry import POD_MODES, TargetOptions
from harness.targets.base import UNKNOWN_VERSION
from harness.traffic import (
    CLIENTS,
    ErrorKind,
    HealthCheckReply,
    HealthCheckRequest,
    Outcome,
    Reachability,
    TrafficRequest,
    TrafficSample,
)
from harness.versions import proxy_command_version

NAMESPACE_PREFIX = "svc-lb-"
HELD_PORT = "http"  # the Service port a held flow goes to (`harness.longlived.PORT`)
STARTUP_S = 180.0  # client pods: image pulls on a fresh node
RESET_WAIT_S = 60.0
RECREATE_WAIT_S = 30.0
NODE_METRICS_OFF = (
    "--pods cluster: kube-proxy's metrics are not read (they are on each node's loopback by"
    " default; reading them through the node proxy needs `get nodes/proxy`)"
)
FIRST_SYNC_ATTEMPTS = 50  # 5 s for the proxy's first sync after open (kubernetes#82378)


SERVICE_VERBS = frozenset({Verb.CREATE_SERVICE, Verb.PATCH_SERVICE, Verb.DELETE_SERVICE})


class KubeTarget:
    """A real cluster: any kubeconfig, a kind cluster, or an API server without kubelets."""

    name = "kube"
    _cluster_proxy: ClusterProxy | None = None  # --restart-cluster-proxy, once open
    _cluster_proxy_problem: str | None = None  # why it cannot be restarted (found by open)
    api_connections_cut = 0  # by the last `RestartProxy(api_only=True)`
    sends_udp = True  # UDP Service ports: nc loops in the clients (`harness.kube.udp`)
    description = (
        "a real Kubernetes cluster (--kubeconfig/--context, --kind-cluster NAME,"
        " or --pods local for an API server without kubelets)"
    )

    def __init__(
        self,
        options: TargetOptions,
        cluster: Cluster | None = None,
        pod_exec: Exec | None = None,
    ) -> None:
        """`cluster` and `pod_exec` replace the connection and `pods/exec` (tests use a mock
        API server, which speaks no websocket)."""
        if options.pods not in POD_MODES:
            raise UsageError(f"--pods must be one of {', '.join(POD_MODES)}, got {options.pods!r}")
        if options.proxy_command and options.pods != "local":
            raise UsageError(
                "--proxy-command needs --pods local (a real cluster runs its own proxy)"
            )
        if options.read_node_rules and options.pods == "local":
            raise UsageError(
                "--read-node-rules is for --pods cluster (--pods local reads the node namespace"
                " itself); drop it"
            )
        switch(options.extra, "host_clients", True)  # a bad value stops here, before anything
        self._proxy_selector = check_selector(options.extra.get("proxy_selector", PROXY_SELECTOR))
        if switch(options.extra, "sctp", False) and options.pods == "local":
            raise UsageError(
                f"{SCTP_FLAG} is for --pods cluster (with --pods local SCTP is sent wherever this"
                " machine's kernel tracks SCTP); drop it"
            )
        if switch(options.extra, "restart_cluster_proxy", False) and options.pods == "local":
            raise UsageError(
                f"{RESTART_FLAG} is for --pods cluster (with --pods local the harness restarts"
                " --proxy-command itself); drop it"
            )
        self.options = options
        self._name_run()
        self.clock = RealClock()
        self.state = ClusterState()
        self._given_cluster = cluster
        self._pod_exec = pod_exec
        self.cluster: Cluster | None = cluster
        self._kind: KindCluster | None = None
        self._namespace_created = False
        self._heartbeat: Heartbeat | None = None
        self.lease_problem: str | None = None  # a renewal failure, reported by close()
        self._slices: Watched | None = None
        self._pods: Watched | None = None
        self._incarnations = Incarnations()
        self.runtime: PodRuntime | None = None
        self._cluster_ips: dict[str, str] = {}
        self._pending_ready: dict[str, float] = {}
        self._workdir: str | None = None
        self._server_version = UNKNOWN_VERSION
        self._scope: Scope | None = None
        self._readers: NodeReaders | None = None
        self._reader_exec: Exec | None = None
        self._rules_problem: str | None = None  # why rules cannot be read (kept across reopens)
        self._rules_checked = False
        self._host: HostClients | None = None  # hostNetwork clients (harness.kube.external)
        self._host_problem: str | None = None  # why there are none (set by open)
        self._layout = Layout.NFTABLES  # the layout looked for first (the last one found)
        self._writer = Writer.from_option(options.extra.get("api_concurrency"))
        self._hooks = threading.Lock()  # the runtime's hooks run one at a time
        self._metrics = MetricsWindow(self._metrics_source())
        self._changed_at_s = 0.0  # wall clock of the last API write or slice change seen
        self._datagrams: PodDatagrams | NamespaceDatagrams | None = None  # UDP, once asked

    def _name_run(self) -> None:
        """Choose the run prefix (given, or fresh) and the namespace and placement named by it.

        A fresh prefix per `open()`: a deleted namespace lingers while it terminates, so a
        reopened target must not reuse its name.
        """
        from harness.local.names import check_prefix, new_prefix

        try:
            given = self.options.prefix
            self.prefix = check_prefix(given) if given else new_prefix()
        except ValueError as error:
            raise UsageError(str(error)) from None
        self.namespace = f"{NAMESPACE_PREFIX}{self.prefix}"
        image = self.options.extra.get("image", DEFAULT_IMAGE)
        # --kube-sctp: netexec serves and dials SCTP in the pods (not --pods local's namespaces)
        sctp = self.options.pods != "local" and self.sends_sctp
        self.placement = Placement(self.namespace, self.prefix, image, sctp=sctp)

    @classmethod
    def from_spec(cls, arg: str | None, options: TargetOptions) -> KubeTarget:
        """The target the command line asks for. A kubeconfig (given, or found as kubectl finds
        it) is read now, so that a bad one is a usage error before anything starts; reading it
        contacts no server."""
        if arg:
            raise UsageError(f"the kube target takes no argument (got kube:{arg}); see --pods")
        target = cls(options)
        if not options.kind_cluster:
            connect(options.kubeconfig, options.context).close()
        return target

    # -- open and close -----------------------------------------------------------------------
    def open(self) -> None:
        """Connect, create the namespace, start the watches and the runtime.

        Creates no Service and no backend pod. On any failure everything made so far is
        removed before the one-line error propagates.
        """
        # A safety net for interpreters that end without calling close() (an uncaught Ctrl-C):
        # the namespace still goes. close() removes the hook.
        atexit.register(self.close)
        try:
            self.cluster = self._connect()
            self._server_version = self.cluster.check()
            self.cluster.call(
                "create namespaces",
                self.cluster.core.create_namespace,
                namespace_manifest(
                    self.namespace, self.prefix, privileged=bool(self.options.read_node_rules)
                ),
            )
            self._namespace_created = True
            self._start_heartbeat(self.cluster)
            self._start_watches(self.cluster)
            self.runtime = self._make_runtime(self.cluster)
            self.runtime.start()
            self.placement = Placement(
                self.namespace,
                self.prefix,
                self.placement.image,
                self.runtime.nodes,
                sctp=self.placement.sctp,
            )
            self._start_readers(self.cluster)
            self._start_host_clients(self.cluster)
            self._start_cluster_proxy(self.cluster)
            self._begin_metrics()
        except BaseException:
            self.close()
            raise

    def versions(self) -> dict[str, str]:
        """The API server's gitVersion (read by `open()`) and, with `--pods local`, the proxy
        command's `--version` line when it runs kube-proxy (`proxy_command_version`)."""
        known = {"server": self._server_version}
        if self.options.pods == "local":
            known["proxy"] = proxy_command_version(self.options.proxy_command)
        return known

    def _connect(self) -> Cluster:
        if self._given_cluster is not None:
            return self._given_cluster
        kubeconfig = self.options.kubeconfig
        if self.options.kind_cluster:
            if kubeconfig:
                raise UsageError("give either --kubeconfig or --kind-cluster, not both")
            self._kind = KindCluster(self.options.kind_cluster, keep=self.options.keep_cluster)
            kubeconfig = self._kind.create()
        return connect(kubeconfig, self.options.context)

    # -- liveness (the run's Lease) -------------------------------------------------------------
    def _start_heartbeat(self, cluster: Cluster) -> None:
        """Create the run's Lease and start renewing it (see harness.kube.heartbeat)."""
        every_s = float(self.options.extra.get("lease_renew_s", RENEW_EVERY_S))
        self._heartbeat = Heartbeat(cluster, self.namespace, self.prefix, every_s)
        self._heartbeat.start()

    def _stop_heartbeat(self) -> None:
        """Stop renewing and delete the Lease; a renewal failure during the run is kept in
        `lease_problem` and said on stderr, one line (it never fails the run). Raises only the
        Lease delete's one-line error."""
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is None:
            return
        self.lease_problem = heartbeat.problem()
        if self.lease_problem:
            print(f"warning: {self.lease_problem}", file=sys.stderr)
        heartbeat.stop()

    def _start_watches(self, cluster: Cluster) -> None:
        self._pods = Watched(
            cluster,
            cluster.core.list_namespaced_pod,
            self.namespace,
            f"{RUN_LABEL}={self.prefix}",
            "pods",
            on_change=self._incarnations.record,
        )
        self._pods.start()
        self._slices = Watched(
            cluster,
            cluster.discovery.list_namespaced_endpoint_slice,
            self.namespace,
            SERVICE_NAME_LABEL,
            "endpointslices",
            on_change=self._slice_changed,
        )
        self._slices.start()

    def _slice_changed(self, kind: str, item: Any) -> None:
        """The watch saw an EndpointSlice change (its thread): the proxy must sync after it."""
        del kind, item
        self._changed_at_s = max(self._changed_at_s, time.time())

    def _make_runtime(self, cluster: Cluster) -> PodRuntime:
        assert self._pods is not None
        scope = self._scope = Scope(cluster, self.placement, CLIENTS, self.clock)
        if self.options.pods == "local":
            from harness.kube.kubelet import LocalKubelet

            self._workdir = tempfile.mkdtemp(prefix=f"{self.prefix}-kube-")
            return LocalKubelet(
                scope,
                Path(self._workdir),
                proxy_command=self.options.proxy_command,
                service_cidr=self.options.extra.get("service_cidr"),
            )
        return ClusterRuntime(
            scope,
            self._pods,
            wanted_nodes=self.options.extra.get("nodes"),
            startup_s=float(self.options.extra.get("startup_s", STARTUP_S)),
            exec_function=self._pod_exec,
        )

    def close(self) -> None:
        """Stop watches and runtime, delete the namespace (and Nodes, and a kind cluster made for
        the run). Idempotent; safe after a failed `open()` and on KeyboardInterrupt."""
        atexit.unregister(self.close)
        for watched in (self._slices, self._pods):
            if watched is not None:
                watched.stop()
        self._slices = self._pods = None
        problems: list[BaseException] = []
        if self._metrics.open:
            self._metrics.end(self._read_proxy_metrics())
        for helpers in (self._readers, self._host, self._datagrams):
            if helpers is not None:
                try:
                    helpers.close()
                except Exception as error:
                    problems.append(error)
        self._readers = self._host = self._datagrams = None
        cluster_proxy, self._cluster_proxy = self._cluster_proxy, None
        if cluster_proxy is not None:
            cluster_proxy.stop()
        if self.runtime is not None:
            runtime, self.runtime = self.runtime, None
            try:
                runtime.close()
            except Exception as error:  # keep cleaning up; report the first problem at the end
                problems.append(error)
        try:
            self._stop_heartbeat()
        except Exception as error:
            problems.append(error)
        if self._namespace_created and self.cluster is not None:
            self._namespace_created = False
            try:
                self.cluster.call(
                    "delete namespaces",
                    self.cluster.core.delete_namespace,
                    self.namespace,
                    allow=(404,),
                )
            except Exception as error:
                problems.append(error)
        if self.cluster is not None and self.cluster is not self._given_cluster:
            self.cluster.close()
            self.cluster = None
        if self._kind is not None:
            kind, self._kind = self._kind, None
            try:
                kind.delete()
            except Exception as error:
                problems.append(error)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self.state = ClusterState()
        self._cluster_ips.clear()
        self._pending_ready.clear()
        self._name_run()
        if problems:
            raise problems[0]

    def reset(self) -> None:
        """Back to an empty namespace between examples, keeping the clients (faster than
        close+open): delete every Service and backend pod (concurrently, `harness.kube.writer`),
        and wait on the watches until the pods and slices are gone."""
        _, pods = self._require()
        operations = [Operation(Verb.DELETE_SERVICE, service) for service in self.state.services]
        operations += [
            Operation(Verb.REMOVE_POD, pod.name, pod=pod, grace_s=0)
            for pod in self.state.pods.values()
        ]
        self._writer.run_waves(operations, self._execute)
        # Wait (bounded) until the old pods and the old Services' slices are gone, so the next
        # example's incarnations (u1, u2, ... again) cannot be confused with the old ones.
        deadline_s = self.clock.now() + RESET_WAIT_S
        assert self._slices is not None
        wait_for_names(pods, self.state.pods, present=False, timeout_s=RESET_WAIT_S)
        self._slices.wait_until(lambda cache: not cache, deadline_s - self.clock.now())
        self.state = ClusterState()
        self._cluster_ips.clear()
        self._pending_ready.clear()

    # -- the Target contract ------------------------------------------------------------------
    @property
    def restart_unsupported(self) -> str | None:
        """Why `RestartProxy` cannot be applied here, or None: the proxy command's process of
        `--pods local` (`LocalKubelet.restart_proxy`), or with `--restart-cluster-proxy` the
        cluster's kube-proxy pods (`harness.kube.proxyrestart`; before `open()` that is taken
        on trust, and `open()` fails in one line when the pods are missing or may not be
        deleted, which this then says)."""
        if self.options.pods == "local" and self.options.proxy_command:
            return None
        if self.options.pods == "local" or not self._restarts_cluster_proxy:
            selector = self.options.extra.get("proxy_selector", PROXY_SELECTOR)
            return (
                "restarting the proxy needs --pods local with --proxy-command, or"
                f" {RESTART_FLAG} on --pods cluster (opt-in, as it disrupts everything on the"
                f" cluster: it deletes the pods {selector} in {PROXY_NAMESPACE} and waits for"
                " their DaemonSet)"
            )
        if self._cluster_proxy_problem is not None:
            return f"{RESTART_FLAG}: {self._cluster_proxy_problem}"
        return None

    @property
    def sends_sctp(self) -> bool:
        """Whether SCTP Service ports are sent to (`harness.udp_support.generates_sctp`): on
        `--pods cluster` only with `--kube-sctp` (extra option `sctp`; the nodes' kernels are
        not known here); on `--pods local` where this machine's kernel tracks SCTP
        (`harness.protocols.sctp_unsupported`), whose client namespaces send it as the local
        cluster's do. Reads one directory entry at most."""
        if self.options.pods == "local":
            return sctp_unsupported() is None
        return switch(self.options.extra, "sctp", False)

    host_unsent = {SCTP: HOST_SCTP}
    """Service port protocols the hostNetwork clients do not send, with why
    (`harness.nodeclients.unsent_from_nodes`): their samples are not judged."""

    @property
    def _restarts_cluster_proxy(self) -> bool:
        """Whether `--restart-cluster-proxy` was given (extra option `restart_cluster_proxy`)."""
        return switch(self.options.extra, "restart_cluster_proxy", False)

    @property
    def api_cut_unsupported(self) -> str | None:
        """Why the proxy's API connections cannot be cut here (`RestartProxy.api_only`), or
        None: only `--pods local` with `--proxy-command`, whose proxy reaches the API server
        through the harness's relay (`LocalKubelet.cut_api_connections`); a cluster's
        kube-proxy talks to its API server directly."""
        if self.options.pods == "local" and self.options.proxy_command:
            return None
        return (
            "cutting the proxy's API connections needs --pods local with --proxy-command (the"
            " proxy then reaches the API server through the harness's relay); a cluster's"
            " kube-proxy connects to its API server directly"
        )

    def _cut_api(self) -> None:
        """`RestartProxy(api_only=True)`: cut every connection the proxy holds to the API server
        (the relay keeps listening, so it reconnects, lists and watches again); the cluster and
        the model do not change, and the runner then waits for every Service to converge."""
        why = self.api_cut_unsupported
        if why is not None:
            raise UsageError(f"{RestartProxy.kind} api_only: {why}")
        self._check()
        cut = getattr(self.runtime, "cut_api_connections", None)
        if not callable(cut):
            raise UsageError(f"{RestartProxy.kind} api_only: the pod runtime has no API relay")
        self.api_connections_cut = int(cut())

    stale_unsupported = (
        "a real proxy reads its inputs from the API server, which the harness cannot make"
        " serve a stale snapshot"
    )

    unobserved_unsupported = (
        "a real proxy watches the API server, which the harness cannot make hide changes from it"
    )
    out_of_window_unsupported = (
        "the harness holds no TCP connection open on a real cluster (long-lived-connections"
        " judges only held UDP flows there), so no pod's out-of-window segment can be judged"
    )

    def apply(self, event: Event) -> None:
        """Write the API changes that take the cluster from the model's state to the next.
        `RestartProxy` restarts the proxy command's process under `--pods local` and is refused
        elsewhere with its reason (`restart_unsupported`), never taken as a no-op; so is
        `StaleSnapshot` and `UnobservedChanges`, always (`stale_unsupported`,
        `unobserved_unsupported`)."""
        if isinstance(event, RestartProxy) and event.while_down:
            raise UsageError(f"{RestartProxy.kind} while_down: {self.unobserved_unsupported}")
        if isinstance(event, RestartProxy) and event.api_only:
            self._cut_api()
            return
        if isinstance(event, RestartProxy):
            self._restart_proxy()
            return
        if isinstance(event, StaleSnapshot):
            raise UsageError(f"{StaleSnapshot.kind}: {self.stale_unsupported}")
        if isinstance(event, UnobservedChanges):
            raise UsageError(f"{UnobservedChanges.kind}: {self.unobserved_unsupported}")
        if isinstance(event, OutOfWindow):
            raise UsageError(f"{OutOfWindow.kind}: {self.out_of_window_unsupported}")
        if isinstance(event, SetExternalIPs) and event.addresses:
            raise UsageError(f"{SetExternalIPs.kind}: external-ips is {KUBE_EXTERNAL_IPS}")
        before = self.state
        after = event.apply(before)
        for operation in plan(before, after, self.placement):
            self._execute(operation)
            if operation.verb in SERVICE_VERBS:  # slice changes: `_slice_changed`
                self._changed_at_s = max(self._changed_at_s, time.time())
        self.state = after

    def sync_state(self) -> SyncState | None:
        """kube-proxy's own report, from its metrics, that it has programmed everything up to
        the last Service change the harness made or EndpointSlice change its watch saw
        (`harness.kube.proxy_sync`: a sync ended after it and nothing is pending); pod writes
        that change no slice are not waited for, since no sync need follow them. None while its
        metrics are not being read (no evidence: convergence goes by traffic alone). Reads only;
        wall clock, as kube-proxy stamps its syncs with its own (`--pods local`: this
        machine's)."""
        if not self._metrics.open:
            return None
        text = self._read_proxy_metrics()
        return sync_state_from_metrics(text, self._changed_at_s) if text else None

    def _restart_proxy(self) -> None:
        """Restart the proxy command (`--pods local`) or, with `--restart-cluster-proxy`, the
        cluster's kube-proxy pods (`ClusterProxy.restart`: deleted, and waited for until their
        DaemonSet has them Ready again); the metrics window closes with the old process and
        opens again after the new one's first sync (kubernetes#82378), and convergence waits
        for a sync after the restart (`sync_state`; by traffic alone where metrics are not
        read)."""
        why = self.restart_unsupported
        if why is not None:
            raise UsageError(f"{RestartProxy.kind}: {why}")
        self._check()
        restart = (
            self._cluster_proxy.restart
            if self._cluster_proxy is not None
            else getattr(self.runtime, "restart_proxy", None)
        )
        if not callable(restart):
            raise UsageError(f"{RestartProxy.kind}: the pod runtime cannot restart the proxy")
        if self._metrics.open:
            self._metrics.end(self._read_proxy_metrics())
        restart()
        self._changed_at_s = max(self._changed_at_s, time.time())
        self._begin_metrics()

    def apply_many(self, events: Sequence[Event]) -> None:
        """Apply several events as one change: the API writes from the state before to the state
        after all of them, at most `Writer.concurrency` in flight (`harness.kube.writer`). For
        building and tearing down large clusters (benchmarks); the cluster never sees the
        intermediate states. Like `apply`, returns without waiting for the control plane."""
        after = self.state
        for event in events:
            after = event.apply(after)
        self._writer.run_waves(plan(self.state, after, self.placement), self._execute)
        self.state = after

    def endpoint_slices(self, service: str) -> tuple[EndpointSlice, ...]:
        """The Service's EndpointSlices from the watch, in the model's terms."""
        self._check()
        assert self._slices is not None
        reverse = {real: model for model, real in (self.placement.nodes or {}).items()}
        converted = []
        for item in self._slices.items():
            if (item.metadata.labels or {}).get(SERVICE_NAME_LABEL) != service:
                continue
            endpoint_slice = to_model_slice(item, self._incarnations, reverse)
            if endpoint_slice is not None:
                converted.append(endpoint_slice)
        return tuple(sorted(converted, key=lambda s: s.name))

    def send(self, request: TrafficRequest) -> TrafficSample:
        """One bounded batch from a client to the Service's ClusterIP and port; from outside to
        a node's InternalIP on the port's node port (`external_node`), or from a node's host
        network (`client_node`), through the hostNetwork clients (`harness.kube.external`).
        UsageError for those where the target has none (`external_unsupported`), for a port
        without a node port, and for a request to an ingress IP (`via_load_balancer`)."""
        self._check()
        assert self.runtime is not None
        if request.external_node is not None or request.client_node is not None:
            return self._send_from_host(request)
        service = self.state.services.get(request.service)
        found = (
            next((p for p in service.ports if p.name == request.port), None) if service else None
        )
        if service is None or found is None:
            # Nothing to address: the model's answer for a missing Service is a refusal.
            now_s = self.clock.now()
            outcomes = tuple(Outcome(None, ErrorKind.REFUSED, 0.0, i) for i in range(request.count))
            return TrafficSample(request, outcomes, now_s, now_s)
        address = self._cluster_ip(request.service)
        if found.protocol == UDP:
            return self._udp().send(request, address, found.port)
        if found.protocol == SCTP and self.sends_sctp:
            return self._send_sctp(request, address, found.port)
        if found.protocol != TCP:
            raise UsageError(
                f"Service {request.service!r} port {request.port!r} is {found.protocol}: the kube"
                f" target sends TCP and UDP only (sctp: {KUBE_SCTP})"
            )
        return self.runtime.send(request, address, found.port)

    def _send_sctp(self, request: TrafficRequest, address: str, port: int) -> TrafficSample:
        """One batch of SCTP requests from `request.client`'s pod through its netexec `/dial`
        (`harness.kube.sctp`; `--kube-sctp`), or with `--pods local` from its client namespace
        (`harness.kube.datagrams`, the local cluster's SCTP client). Changes nothing in the
        cluster."""
        if self.options.pods == "local":
            from harness.local.sctp import SCTP_MODE

            datagrams = self._udp()
            assert isinstance(datagrams, NamespaceDatagrams)  # what --pods local sends from
            return datagrams.send(request, address, port, protocol=SCTP_MODE)
        cluster, _ = self._require()
        assert self._scope is not None
        pod_exec = self._pod_exec or PodExec(cluster, self.namespace)
        pod = ClientPods(self._scope, None, pod_exec).pod_name(request.client)
        return send_sctp(pod_exec, pod, request, address, port, self.clock)

    # -- held UDP flows (`ConnectionHolder`, harness.longlived) --------------------------------
    relays_connections = False  # the cluster's proxy programs the kernel: flows live in conntrack

    def hold(self, service: str, client: str, timeout_s: float) -> tuple[int | None, Outcome]:
        """Hold a UDP flow from `client` to the Service's port `http` when that port is UDP
        (`harness.kube.datagrams`: a fixed source port, asked again by later execs from the
        same client, so its conntrack entry is the same); its number and the first answer.
        A TCP port gets no connection, (None, OTHER): no TCP connection outlives an exec into
        a client pod, so `long-lived-connections` judges UDP flows only here. Bounded by
        `timeout_s`; changes nothing but the client's flows."""
        self._check()
        found = self.state.services.get(service)
        port = next((p for p in found.ports if p.name == HELD_PORT), None) if found else None
        if found is None or port is None or port.protocol != UDP:
            return None, Outcome(None, ErrorKind.OTHER, 0.0, 0)
        return self._udp().hold(client, self._cluster_ip(service), port.port, timeout_s)

    def hold_node_port(
        self, service: str, node: str, timeout_s: float
    ) -> tuple[int | None, Outcome]:
        """Hold a UDP flow from outside to `node`'s InternalIP on the node port of the Service's
        port `http`: from the hostNetwork client on another node (`harness.kube.external`), a
        fixed source port, asked again by later execs there (`harness.longlived`). UsageError
        without hostNetwork clients (`external_unsupported`), for a port that is not UDP or has
        no node port. Bounded by `timeout_s`."""
        self._check()
        found = self.state.services.get(service)
        port = next((p for p in found.ports if p.name == HELD_PORT), None) if found else None
        if port is None or port.protocol != UDP or port.node_port is None:
            raise UsageError(
                f"Service {service!r} has no UDP port {HELD_PORT!r} with a node port to hold a"
                " flow to"
            )
        if self._host is None:
            raise UsageError(
                f"the kube target cannot send from outside: {self.external_unsupported}"
            )
        datagrams = self._udp()
        if not isinstance(datagrams, PodDatagrams):
            raise UsageError("only the client pods hold flows to node ports")
        sender = self._host.pod_name(outside_of(self._host.names, node))
        address = self._host.addresses[node]
        return datagrams.hold_from(sender, address, port.node_port, timeout_s)

    def ask_held(self, number: int, timeout_s: float) -> Outcome:
        """One datagram on held flow `number` (RESET for an unknown number)."""
        self._check()
        return self._udp().ask_held(number, timeout_s)

    def release_held(self) -> None:
        """Forget every held flow. Idempotent."""
        if self._datagrams is not None:
            self._datagrams.release_held()

    def _udp(self) -> PodDatagrams | NamespaceDatagrams:
        """The UDP senders of the clients (`harness.kube.datagrams`), made on first use: the
        client pods' nc loops, or with `--pods local` the client namespaces' own UDP client."""
        if self._datagrams is None:
            cluster, _ = self._require()
            if self.options.pods == "local":
                netns_of = getattr(self.runtime, "client_netns", None)
                if not callable(netns_of):
                    raise UsageError("the pod runtime has no client namespaces to send UDP from")
                self._datagrams = NamespaceDatagrams(netns_of, self.clock)
            else:
                assert self._scope is not None
                pod_exec = self._pod_exec or PodExec(cluster, self.namespace)
                pods = ClientPods(self._scope, None, pod_exec)
                self._datagrams = PodDatagrams(pod_exec, pods.pod_name, self.clock)
        return self._datagrams

    # -- what the cluster offers -----------------------------------------------------------------
    def features(self) -> frozenset[str]:
        """The conformance features judged on this cluster (`target_features`): every one but
        `load-balancer`. A LoadBalancer Service's ingress IP comes from the cluster's
        LoadBalancer controller, which a cluster may lack (kind has none; then it never comes)
        and which is not the harness's to drive, and the kube target does not send to ingress
        IPs (it has no `load_balancer_source`): that is the environment's limit, not the
        proxy's failure. So the feature is reported unsupported, with
        `harness.protocols.environment_notes`' "unsupported by the environment" note, and no
        LoadBalancer Service is drawn, so nothing waits for an ingress IP. Nor `external-ips`:
        the cluster's admission may refuse externalIPs (DenyServiceExternalIPs) and nothing
        routes them to a chosen node (`harness.protocols.KUBE_EXTERNAL_IPS`); none is drawn and
        `set-external-ips` is refused (`apply`). Nor `topology`: a cluster's controller hints
        endpoints by its nodes' `topology.kubernetes.io/zone` labels, which the harness neither
        sets nor checks against the model's zones (`harness.protocols.KUBE_TOPOLOGY`). Nor
        `sctp` unless `sends_sctp` (`--kube-sctp` on a cluster, whose every node needs the sctp
        module: `harness.protocols.KUBE_SCTP`; `--pods local` where this kernel tracks SCTP).
        `udp` is judged: its Service ports are sent to with nc
        loops (`harness.kube.udp`). Reads one directory entry at most (`sends_sctp`)."""
        from harness.features import ALL_FEATURES, EXTERNAL_IPS, LOAD_BALANCER, TOPOLOGY

        sctp = set() if self.sends_sctp else {SCTP_FEATURE}
        return ALL_FEATURES - {LOAD_BALANCER, EXTERNAL_IPS, TOPOLOGY, *sctp}

    # -- the nodes' host networks as clients (harness.kube.external) ---------------------------
    def _start_host_clients(self, cluster: Cluster) -> None:
        """On `--pods cluster` with two or more distinct mapped nodes (and not turned off with
        `host_clients=off`): one hostNetwork client pod per node, waited for. A cluster that
        refuses or cannot run them (Pod Security Admission forbids hostNetwork below its
        privileged level) leaves `node-port` and `every-node` not applicable with that line,
        never the run failed."""
        assert self.runtime is not None
        self._host_problem = host_clients_problem(
            self.options.pods, self.options.extra, self.runtime.nodes
        )
        if self._host_problem is not None:
            return
        assert self._pods is not None and self._scope is not None and self.runtime.nodes
        host = HostClients(
            self._scope,
            self._pods,
            self.runtime.nodes,
            self._pod_exec or PodExec(cluster, self.namespace),
            float(self.options.extra.get("startup_s", STARTUP_S)),
        )
        self._host = host
        try:
            host.start()
        except EnvironmentProblem as problem:
            self._host = None
            host.close()
            self._host_problem = f"the hostNetwork client pods cannot run here: {problem.line()}"

    def _start_cluster_proxy(self, cluster: Cluster) -> None:
        """With `--restart-cluster-proxy` (`--pods cluster`): watch the cluster's kube-proxy pods
        and prove they may be deleted (`ClusterProxy.start`). A cluster that has none or refuses
        ends `open()` with one line naming the flag; `restart_unsupported` says the same."""
        if not self._restarts_cluster_proxy:
            return
        wait_s = float(self.options.extra.get("proxy_restart_s", RESTART_WAIT_S))
        proxy = ClusterProxy(cluster, self._proxy_selector, wait_s)
        try:
            proxy.start()
        except EnvironmentProblem as problem:
            proxy.stop()
            self._cluster_proxy_problem = problem.line()
            raise EnvironmentProblem(f"{RESTART_FLAG}: {problem.line()}") from None
        self._cluster_proxy = proxy

    @property
    def external_unsupported(self) -> str | None:
        """Why nothing is sent from outside a node or from a node's host network (`node-port`,
        `every-node`), or None when it is: `--pods local`, one mapped node, host clients
        turned off or refused, or the target not open."""
        if self._host is not None:
            return None
        return self._host_problem or "the target has no hostNetwork clients until it is open"

    @property
    def node_names(self) -> tuple[str, ...]:
        """The model nodes with a hostNetwork client (`client_node`, `external_node`), node-1
        first; none without them (`external_unsupported`)."""
        return self._host.names if self._host is not None else ()

    @property
    def external_address(self) -> str | None:
        """The external client's address as node-1's pods see it (`external_source`), or None
        without hostNetwork clients. Each node is sent to from another node, so the address
        depends on the node: `external_source` gives it per node."""
        return self._host.source_for(self._host.names[0]) if self._host is not None else None

    def external_source(self, node: str) -> str:
        """The address a connection from outside to `node` leaves from (the sending node's
        InternalIP), which a pod must see under externalTrafficPolicy Local."""
        if self._host is None:
            raise UsageError(self.external_unsupported or "no external client")
        return self._host.source_for(node)

    def health_check(self, request: HealthCheckRequest) -> HealthCheckReply:
        """One HTTP GET of `request.node`'s healthCheckNodePort at its InternalIP from the
        hostNetwork client on another node, as a cloud load balancer's health check asks it
        (`HostClients.ask_health`), with the run's namespace in kube-proxy's body renamed the
        model Service's (`healthprobe.in_model_terms`), so `health-check-node-port` judges it
        as on the local cluster. UsageError without hostNetwork clients
        (`external_unsupported`). Sends one request, changes nothing."""
        self._check()
        if self._host is None:
            raise UsageError(
                f"the kube target cannot ask health checks: {self.external_unsupported}"
            )
        reply = self._host.ask_health(request)
        owner = next(
            (s for s in self.state.services.values() if s.health_check_node_port == request.port),
            None,
        )
        model_namespace = owner.namespace if owner is not None else DEFAULT_NAMESPACE
        return in_model_terms(reply, self.namespace, model_namespace)

    def _send_from_host(self, request: TrafficRequest) -> TrafficSample:
        """A batch from a hostNetwork client: to a node port from outside, or to the ClusterIP
        from a node (`send`)."""
        if request.external_ip is not None:
            raise UsageError(f"the kube target does not send to externalIPs: {KUBE_EXTERNAL_IPS}")
        if request.via_load_balancer:
            raise UsageError(
                "the kube target does not send to LoadBalancer ingress IPs (via_load_balancer):"
                " load-balancer is unsupported by the environment there; use --target"
                " local:iptables --nodes 2"
            )
        if self._host is None:
            raise UsageError(
                f"the kube target cannot send from the nodes: {self.external_unsupported}"
            )
        service = self.state.services.get(request.service)
        found = (
            next((p for p in service.ports if p.name == request.port), None) if service else None
        )
        if service is None or found is None:
            raise UsageError(f"no Service port {request.service}:{request.port}")
        if found.protocol in self.host_unsent:
            raise UsageError(
                f"Service {request.service!r} port {request.port!r} is {found.protocol}:"
                f" {self.host_unsent[found.protocol]}"
            )
        if request.external_node is None:
            address = self._cluster_ip(request.service)
            return self._host.send_from(request, address, found.port, found.protocol)
        if found.node_port is None:
            raise UsageError(
                f"Service {request.service!r} port {request.port!r} has no node port (type"
                f" {service.type.value}): make it NodePort or LoadBalancer first"
            )
        return self._host.send_external(request, found.node_port, found.protocol)

    def programming_latency(self) -> ProgrammingLatency | None:
        """kube-proxy's `network_programming_duration_seconds` histogram, the cross-check of the
        runner's end-to-end measurement, or None where the proxy's metrics are not reachable
        (see harness.kube.metrics). Reads only."""
        if self.runtime is None:
            return None
        text = self.runtime.proxy_metrics()
        return parse_metrics(text) if text else None

    def proxy_metrics(self) -> dict[str, Any]:
        """The proxy's own sync histograms since `open()` (each proxy lifetime's first sync left
        out), for the results file: `harness.kube.metrics.summary`, or `not_available` with the
        reason. Reads only; never raises for absent metrics."""
        if self._metrics.open:
            text = self._read_proxy_metrics()
            self._metrics.end(text)
            self._metrics.begin(text, self._metrics_unreachable())
        return self._metrics.result()

    def _metrics_source(self) -> str:
        if self.options.pods == "local":
            host, port = bind_address(self.options.proxy_command)
            return f"http://{host}:{port}/metrics in the node namespace"
        return "kube-proxy on the first node, through the API server's node proxy"

    def _metrics_unreachable(self) -> str:
        """Why the proxy's metrics could not be read, in one line."""
        if self.options.pods == "local" and not self.options.proxy_command:
            return "no --proxy-command: no proxy runs in the node namespace"
        if self.options.pods == "local":
            return f"nothing answered at {self._metrics.source}"
        return (
            "kube-proxy's metrics are not reachable through the API server's node proxy"
            " (loopback-bound metricsBindAddress, or no `get nodes/proxy` permission)"
        )

    def _read_proxy_metrics(self) -> str | None:
        if self.runtime is None:
            return None
        try:
            return self.runtime.proxy_metrics()
        except HarnessError:  # metrics annotate a run; they never end one
            return None

    def _begin_metrics(self) -> None:
        """Read the baseline once the proxy reports its first sync (kubernetes#82378: the first
        sync's backlog is not the run's), polling up to 5 s with `--pods local`. On `--pods
        cluster` only when asked (`extra["node_metrics"]`): it needs `get nodes/proxy`, which
        deploy/rbac.yaml does not grant, and metrics kube-proxy binds beyond loopback."""
        if self.options.pods == "local" and not self.options.proxy_command:
            self._metrics.begin(None, self._metrics_unreachable())
            return
        if self.options.pods == "cluster" and not self.options.extra.get("node_metrics"):
            self._metrics.begin(None, NODE_METRICS_OFF)
            return
        attempts = FIRST_SYNC_ATTEMPTS if self.options.pods == "local" else 1
        text = wait_for_first_sync(self._read_proxy_metrics, self.clock.sleep, attempts)
        self._metrics.begin(text, self._metrics_unreachable())

    # -- operations ---------------------------------------------------------------------------
    def _execute(self, operation: Operation) -> None:
        cluster, _ = self._require()
        assert self.runtime is not None
        core, namespace = cluster.core, self.namespace
        verb, name = operation.verb, operation.name
        if verb is Verb.CREATE_SERVICE:
            created = cluster.call(
                f"create services in namespace {namespace}",
                core.create_namespaced_service,
                namespace,
                operation.body,
            )
            ip = getattr(getattr(created, "spec", None), "cluster_ip", None)
            if ip and ip != "None":
                self._cluster_ips[name] = ip
                allocated = getattr(self.runtime, "service_allocated", None)
                if allocated is not None:  # --pods local: the node routes the VIP's range
                    allocated(ip)
        elif verb is Verb.PATCH_SERVICE:
            cluster.call(
                f"patch services in namespace {namespace}",
                core.patch_namespaced_service,
                name,
                namespace,
                operation.body,
                _content_type=MERGE_PATCH,
            )
        elif verb is Verb.DELETE_SERVICE:
            self._cluster_ips.pop(name, None)
            cluster.call(
                f"delete services in namespace {namespace}",
                core.delete_namespaced_service,
                name,
                namespace,
                allow=(404,),
            )
        elif verb is Verb.CREATE_POD:
            assert operation.pod is not None
            cluster.create(
                f"create pods in namespace {namespace}",
                core.create_namespaced_pod,
                namespace,
                operation.body,
                clock=self.clock,
                wait_s=RECREATE_WAIT_S,
            )
            self._pending_ready[name] = self.clock.now()
            with self._hooks:
                self.runtime.pod_created(operation.pod)
        elif verb is Verb.PATCH_POD:
            cluster.call(
                f"patch pods in namespace {namespace}",
                core.patch_namespaced_pod,
                name,
                namespace,
                operation.body,
                _content_type=MERGE_PATCH,
            )
        elif verb in (Verb.DELETE_POD, Verb.REMOVE_POD):
            grace = math.ceil(operation.grace_s or 0)
            cluster.call(
                f"delete pods in namespace {namespace}",
                core.delete_namespaced_pod,
                name,
                namespace,
                grace_period_seconds=grace,
                allow=(404,),
            )
            if verb is Verb.REMOVE_POD and operation.pod is not None:
                self._pending_ready.pop(name, None)
                with self._hooks:
                    self.runtime.pod_stopped(operation.pod)
        elif verb is Verb.SET_READY:
            assert operation.pod is not None and operation.ready is not None
            if operation.ready:
                self._pending_ready[name] = self.clock.now()
            with self._hooks:
                self.runtime.set_ready(operation.pod, operation.ready)
        elif verb is Verb.EVICT_POD:
            cluster.call(
                f"patch pods/status in namespace {namespace}",
                core.patch_namespaced_pod_status,
                name,
                namespace,
                operation.body,
                _content_type=MERGE_PATCH,
            )
            self._pending_ready.pop(name, None)
            if operation.pod is not None:
                with self._hooks:
                    self.runtime.pod_stopped(operation.pod)

    def service_ip(self, service: str) -> str:
        """The ClusterIP the API server gave Service `service` (for benchmarks that address it
        from inside the cluster); one-line EnvironmentProblem if it gave none."""
        return self._cluster_ip(service)

    def in_cluster_load(self) -> InClusterLocust:
        """Locust run by pods in the run's namespace (`harness.kube.loadgen`), for benchmarks:
        its pods go when each run ends, and with the namespace at `close()`."""
        if self.cluster is None or self._scope is None:
            raise UsageError(f"the target {self.name} is not open")
        pod_exec = self._pod_exec or PodExec(self.cluster, self.namespace)
        budget_s = float(self.options.extra.get("startup_s", STARTUP_S))
        return InClusterLocust(self._scope, pod_exec, self.clock, budget_s)

    def _cluster_ip(self, service: str) -> str:
        """The Service's ClusterIP, as the create response carried it.

        The API server allocates it before it stores the Service (pkg/registry/core/service/
        storage), so the response always has it; the harness never reads a Service back, and
        deploy/rbac.yaml grants no `get services`.
        """
        ip = self._cluster_ips.get(service)
        if ip is None:
            raise EnvironmentProblem(
                f"the API server created Service {service} without a ClusterIP: the kube target"
                " needs a server that allocates Service IPs"
            )
        return ip

    # -- the rule oracle (harness.kube.node_rules) --------------------------------------------
    def _start_readers(self, cluster: Cluster) -> None:
        """With `--read-node-rules` on a cluster with kubelets: one reader pod per mapped node,
        waited for (see harness.kube.node_readers). Nothing otherwise."""
        image = self.options.read_node_rules
        if not image or self.options.pods != "cluster" or self.runtime is None:
            return
        assert self._scope is not None and self._pods is not None and self.runtime.nodes
        self._reader_exec = self._pod_exec or PodExec(cluster, self.namespace)
        self._readers = NodeReaders(
            self._scope,
            self._pods,
            self.runtime.nodes,
            self._reader_exec,
            image,
            float(self.options.extra.get("startup_s", STARTUP_S)),
            self.clock,
        )
        self._readers.start()

    @property
    def reads_rules(self) -> bool:
        """Whether the node's rules can be read and are kube-proxy's layout (`rules_unsupported`
        says why not). The first answer after `open()` may wait (bounded) for the proxy's first
        sync; it is kept for the target's lifetime, as the proxy does not change."""
        return self.rules_unsupported is None

    @property
    def rules_unsupported(self) -> str | None:
        """Why `exact-balance` cannot run here, or None when it can: `--pods cluster` without
        `--read-node-rules`, or rules that are not a layout the oracle traces."""
        if self.options.pods == "cluster" and not self.options.read_node_rules:
            return (
                "the target cannot show its programmed rules (on a cluster with kubelets,"
                " --read-node-rules lets the harness read them from a privileged pod per node)"
            )
        if self._rules_checked:
            return self._rules_problem
        if self.runtime is None:
            return "the target cannot show its programmed rules until it is open"
        run, where = self._node_reader(CLIENTS[0])
        wait_s = float(self.options.extra.get("node_rules_wait_s", LAYOUT_WAIT_S))
        try:
            self._layout = wait_for_layout(run, where, self.clock, wait_s).layout
        except UnsupportedRules as error:
            self._rules_problem = f"exact rules unsupported: {error}"
        self._rules_checked = True
        return self._rules_problem

    def reachability(self, service: str, port: str, client: str) -> Reachability:
        """Where a new connection from `client` to `service`'s port goes, traced through the
        rules read from the client's node now (`RuleOracle`; only when `reads_rules`). DNAT
        destinations are named by the Service's slices and the pods the target knows. Rules
        that are not (or no longer) a known layout give no backend and say why in `detail`, so
        convergence keeps waiting; a rule the tracer cannot evaluate is UnsupportedRules. Sends
        no traffic, changes nothing."""
        if not self.reads_rules:
            raise UsageError(self.rules_unsupported or "the target cannot show its rules")
        found = self.state.services.get(service)
        service_port = next((p for p in found.ports if p.name == port), None) if found else None
        if found is None or service_port is None:
            raise UsageError(f"no Service port {service}:{port}")
        source = self._client_ip(client)
        run, where = self._node_reader(client)
        try:
            rules = detect(run, where, self._layout)
        except UnsupportedRules as error:
            return Reachability(False, {}, str(error))
        self._layout = rules.layout
        packet = Packet(
            source, self._cluster_ip(service), service_port.protocol.lower(), service_port.port
        )
        lookup = backend_lookup(self.endpoint_slices(service), service_port, self._pod_ips())
        return rules.reachability(packet, lookup)

    def _node_reader(self, client: str) -> tuple[Run, str]:
        """How to run rule tools on the node `client`'s traffic enters: the node namespace
        (`--pods local`), or the reader pod on the client pod's node."""
        netns = getattr(self.runtime, "node_netns", None)
        if self.options.pods == "local" and netns:
            return netns_reader(netns), f"node namespace {netns}"
        if self._readers is None:
            raise UsageError("the target cannot read node rules: give --read-node-rules")
        pod = self._watched_client(client)
        node = getattr(getattr(pod, "spec", None), "node_name", None)
        reverse = {real: model for model, real in (self.placement.nodes or {}).items()}
        return self._readers.run_on(reverse.get(node or "", PROXY_NODE))

    def _watched_client(self, client: str) -> Any:
        """The client pod object from the pod watch (None before it is seen)."""
        _, pods = self._require()
        assert self._scope is not None and self._reader_exec is not None
        return pods.get(ClientPods(self._scope, None, self._reader_exec).pod_name(client))

    def _client_ip(self, client: str) -> str:
        """The source address of `client`'s connections: the client namespace's (`--pods
        local`) or the client pod's podIP."""
        address: str | None = None
        if self.options.pods == "local":
            address = self.runtime.client_address(client)  # type: ignore[union-attr]
        else:
            status = getattr(self._watched_client(client), "status", None)
            address = getattr(status, "pod_ip", None)
        if not address:
            raise EnvironmentProblem(f"client {client} has no address yet: is it running?")
        return str(address)

    def _pod_ips(self) -> list[tuple[Pod, str | None]]:
        """Every model pod with its real IP: the model's own in `--pods local` (the harness
        runs it there), the watched pod's podIP when its incarnation is the model's."""
        if self.options.pods == "local" or self._pods is None:
            return [(pod, pod.ip) for pod in self.state.pods.values()]
        known = []
        for name, pod in self.state.pods.items():
            seen = self._pods.get(name)
            labels = getattr(getattr(seen, "metadata", None), "labels", None) or {}
            if seen is not None and labels.get(INCARNATION_LABEL) == pod.uid:
                known.append((pod, getattr(seen.status, "pod_ip", None) if seen.status else None))
        return known

    # -- environment checks -------------------------------------------------------------------
    def _check(self) -> None:
        """One-line EnvironmentProblem for a pod that cannot run or never becomes ready, so a
        broken environment is never reported as the proxy's violation."""
        _, pods = self._require()
        assert self.runtime is not None
        self.runtime.check()
        if self._host is not None:
            self._host.check()
        budget_s = float(self.options.extra.get("startup_s", STARTUP_S))
        now_s = self.clock.now()
        for name, since_s in list(self._pending_ready.items()):
            model = self.state.pods.get(name)
            pod = pods.get(name)
            if model is None or not model.ready or model.phase.terminal:
                self._pending_ready.pop(name, None)
                continue
            if pod is None:
                continue
            problem = pod_problem(pod)
            if problem is not None:
                raise EnvironmentProblem(f"pod {name} cannot run: {problem}")
            if pod_is_ready(pod):
                self._pending_ready.pop(name, None)
            elif now_s - since_s > budget_s:
                raise EnvironmentProblem(f"pod {name} did not become ready within {budget_s:.0f}s")

    def _require(self) -> tuple[Cluster, Watched]:
        if self.cluster is None or self._pods is None or self.runtime is None:
            raise RuntimeError("the kube target is not open")
        return self.cluster, self._pods
