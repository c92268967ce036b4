"""`harness-kube-proxy`: the harness's reference proxy driven from the API, for `--pods local`.

This is **not kube-proxy**. It is a stand-in for kube-proxy on machines where none is installed:
the harness's own kernel proxies (`harness.proxies.iptables`, `harness.proxies.nftables`, which
render kube-proxy's rule layouts) fed from a real (or mock) API server the way kube-proxy is
fed, so that `--target kube --pods local` can be run and tested end to end without a kube-proxy
binary. A verdict on it is a verdict on the harness's reference proxies, not on kube-proxy.

What it shares with kube-proxy (cmd/kube-proxy, pkg/proxy):

- flags: `--kubeconfig`, `--hostname-override`, `--proxy-mode iptables|nftables`,
  `--min-sync-period` (default 0 here; kube-proxy's is 1 s), `--metrics-bind-address`
  (default 127.0.0.1:10249, `0` to serve none), `--version`;
- informers: Services and EndpointSlices by list-then-watch (`harness.kube.observe.Watched`),
  EndpointSlices by their `kubernetes.io/service-name` label; namespace-scoped to the
  kubeconfig context's namespace (the run's; kube-proxy watches all namespaces, which the
  harness's Role does not allow). The first sync waits for both lists, as kube-proxy waits for
  its informers to sync;
- sync: level-triggered (the watched state is diffed against what the proxy holds, so a
  re-list after an expired watch loses no deletion), at most one sync per `--min-sync-period`
  (BoundedFrequencyRunner's minInterval), and a periodic sync every `--sync-period`;
- metrics with kube-proxy's names and buckets (`harness.kube.metrics`):
  `kubeproxy_sync_proxy_rules_duration_seconds`,
  `kubeproxy_network_programming_duration_seconds` (per changed EndpointSlice: now minus its
  `endpoints.kubernetes.io/last-change-trigger-time` annotation, observed after the sync that
  programmed it, ignoring times before the proxy started, as `EndpointsChangeTracker` does;
  where no controller writes the annotation, a newly added slice falls back to its
  creationTimestamp, a stand-in deviation: kube-proxy observes nothing then),
  `kubeproxy_sync_proxy_rules_last_timestamp_seconds` and the changes no sync has read yet,
  `kubeproxy_sync_proxy_rules_endpoint_changes_pending` and `..._service_changes_pending` (set
  to 0 when a sync starts reading, as the change trackers' checkout does): the sync evidence
  `harness.kube.proxy_sync` reads;
- SIGTERM (or SIGINT) ends it cleanly: it stops watching and removes its rules (`stop()` of the
  kernel proxy), then exits 0.

It programs the network namespace it runs in (found by matching `/proc/self/ns/net` against
`/run/netns`), and refuses to run anywhere else: it never touches the root namespace.

`--mutant no-reject` is a disclosed, deliberately broken variant that programs no REJECT at all
(a Service without endpoints gets no rule), so that the suite can prove `reject-when-empty`
catches it in `--pods local`. Its `--version` line says so.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from harness import __version__
from harness.errors import EXIT_HARNESS, EXIT_USAGE, HarnessError, UsageError
from harness.kube.api import Cluster, connect
from harness.kube.metrics import (
    DEFAULT_BIND_ADDRESS,
    LAST_SYNC_METRIC,
    METRIC,
    PROGRAMMING_BUCKETS_S,
    SYNC_BUCKETS_S,
    SYNC_METRIC,
    LiveHistogram,
)
from harness.kube.objects import SERVICE_NAME_LABEL
from harness.kube.observe import Incarnations, Watched, to_model_slice
from harness.kube.proxy_sync import PENDING
from harness.local.names import PREFIX_ENVIRONMENT
from harness.model.objects import (
    DEFAULT_AFFINITY_TIMEOUT_S,
    OPT_OUT_LABELS,
    Affinity,
    EndpointSlice,
    Service,
    ServicePort,
    TrafficPolicy,
    labels_of,
)
from harness.proxies.base import NodeContext, slice_key
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import NoRejectIptablesProxy, NoRejectNftablesProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.commands import NETNS_DIR
from harness.proxies.rules.kernel_proxy import KernelRuleProxy

PROGRAM = "harness-kube-proxy"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
DEFAULT_SYNC_PERIOD_S = 30.0  # kube-proxy's --iptables-sync-period default
RETRY_AFTER_FAILURE_S = 1.0
ENDPOINT_CHANGES, SERVICE_CHANGES = PENDING


# -- the disclosed mutant: harness.proxies.mutants ------------------------------------------------
MODES: dict[str, type[KernelRuleProxy]] = {"iptables": IptablesProxy, "nftables": NftablesProxy}
MUTANTS: dict[str, dict[str, type[KernelRuleProxy]]] = {
    "no-reject": {"iptables": NoRejectIptablesProxy, "nftables": NoRejectNftablesProxy},
}


def proxy_class(mode: str, mutant: str | None) -> type[KernelRuleProxy]:
    return MUTANTS[mutant][mode] if mutant else MODES[mode]


def version_line(mutant: str | None = None) -> str:
    broken = f", DISCLOSED MUTANT {mutant}" if mutant else ""
    return (
        f"{PROGRAM} svc-lb-harness {__version__} (the harness's reference proxy driven from the"
        f" API, a stand-in for kube-proxy, not kube-proxy{broken})"
    )


# -- where it runs ---------------------------------------------------------------------------------
def current_netns(netns_dir: Path = NETNS_DIR, own: Path = Path("/proc/self/ns/net")) -> str:
    """The name (under `netns_dir`) of the network namespace this process is in; UsageError
    if it is in none of them (the root namespace, say), so that nothing is ever programmed
    outside a namespace the harness made."""
    mine = os.stat(own)
    if netns_dir.is_dir():
        for entry in sorted(netns_dir.iterdir()):
            try:
                found = os.stat(entry)
            except OSError:
                continue
            if (found.st_dev, found.st_ino) == (mine.st_dev, mine.st_ino):
                return entry.name
    raise UsageError(
        "it runs only inside a named network namespace (ip netns exec NAME ...), as"
        " the kube target's --pods local starts it; this process is in none"
    )


def context_namespace(kubeconfig: str | None) -> str:
    """The namespace of the kubeconfig's current context ("default" without one)."""
    from kubernetes import config

    contexts: Any = config.list_kube_config_contexts  # untyped in the client package
    try:
        _, active = contexts(config_file=kubeconfig)
    except Exception:  # connect() reports a bad kubeconfig with one line
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")


# -- conversion ------------------------------------------------------------------------------------
def to_model_service(item: Any) -> Service | None:
    """A core/v1 Service in the model's terms; None for one the proxy does not serve (headless,
    no ClusterIP yet, or not IPv4), as kube-proxy's `ShouldSkipService`."""
    spec = item.spec
    if spec is None or not spec.cluster_ip or spec.cluster_ip == "None" or ":" in spec.cluster_ip:
        return None
    ports = tuple(
        ServicePort(
            p.name or "",
            int(p.port),
            p.target_port if p.target_port is not None else int(p.port),
            p.protocol or "TCP",
        )
        for p in spec.ports or []
    )
    affinity = Affinity(spec.session_affinity or Affinity.NONE.value)
    timeout_s = DEFAULT_AFFINITY_TIMEOUT_S
    config = spec.session_affinity_config
    if config is not None and config.client_ip is not None and config.client_ip.timeout_seconds:
        timeout_s = int(config.client_ip.timeout_seconds)
    return Service(
        name=item.metadata.name,
        cluster_ip=spec.cluster_ip,
        selector=labels_of(spec.selector or {}),
        ports=ports,
        session_affinity=affinity,
        affinity_timeout_s=timeout_s,
        publish_not_ready_addresses=bool(spec.publish_not_ready_addresses),
        internal_traffic_policy=TrafficPolicy(
            spec.internal_traffic_policy or TrafficPolicy.CLUSTER.value
        ),
        labels=labels_of(  # the proxy filters on them, as kube-proxy's informers do (I13)
            {
                k: v
                for k, v in (getattr(item.metadata, "labels", None) or {}).items()
                if k in OPT_OUT_LABELS
            }
        ),
    )


def trigger_time(item: Any, added: bool) -> float | None:
    """When the change behind a slice happened (epoch seconds): its last-change-trigger-time
    annotation (RFC 3339), else, for a newly added slice, its creationTimestamp; else None."""
    annotations = item.metadata.annotations or {}
    text = annotations.get(TRIGGER_TIME_ANNOTATION)
    if text:
        try:
            parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.timestamp()
    created = item.metadata.creation_timestamp
    if added and isinstance(created, datetime.datetime):
        return created.timestamp()
    return None


# -- metrics ---------------------------------------------------------------------------------------
class ProxyMetrics:
    """kube-proxy's sync metrics, under kube-proxy's names and buckets."""

    def __init__(self) -> None:
        self.sync_duration = LiveHistogram(
            SYNC_METRIC, "SyncProxyRules latency in seconds", SYNC_BUCKETS_S
        )
        self.programming = LiveHistogram(
            METRIC, "In Cluster Network Programming Latency in seconds", PROGRAMMING_BUCKETS_S
        )
        self.last_sync_s = 0.0
        self.pending = dict.fromkeys(PENDING, 0)  # changes no sync has read yet

    def text(self) -> str:
        lines = [*self.sync_duration.render(), *self.programming.render()]
        gauges = {LAST_SYNC_METRIC: self.last_sync_s, **self.pending}
        for name, value in gauges.items():
            lines += [f"# TYPE {name} gauge", f"{name} {value!r}"]
        return "\n".join(lines) + "\n"


def serve_metrics(metrics: ProxyMetrics, address: str) -> ThreadingHTTPServer | None:
    """Serve `/metrics` (and `/healthz`) at `HOST:PORT` in a daemon thread; None for "0"."""
    if address in ("", "0"):
        return None
    host, _, port = address.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/healthz"):
                self.send_error(404)
                return
            body = (metrics.text() if self.path.startswith("/metrics") else "ok\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host.strip("[]") or "0.0.0.0", int(port)), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


K = TypeVar("K")
V = TypeVar("V")


def reconcile(
    current: Mapping[K, V],
    wanted: Mapping[K, V],
    add: Callable[[V], None],
    update: Callable[[V, V], None],
    delete: Callable[[V], None],
) -> None:
    """Tell a proxy's handlers what differs between what it holds and what is wanted: deletions
    first, then additions and updates (unchanged objects are not mentioned)."""
    for key, old in list(current.items()):
        if key not in wanted:
            delete(old)
    for key, new in wanted.items():
        old_value = current.get(key)
        if old_value is None:
            add(new)
        elif old_value != new:
            update(old_value, new)


# -- the proxy loop --------------------------------------------------------------------------------
class StandIn:
    """Services and EndpointSlices from the API, synced into a kernel proxy.

    Contract: `start()` lists both kinds (an API problem raises its one-line HarnessError) and
    starts the proxy; `run()` syncs until `stop()` is called (safe from a signal handler),
    never more often than `min_sync_period_s`, and survives API and sync failures (logged,
    retried); `close()` stops the watches and removes every rule (the proxy's `stop()`). It
    writes nothing to the API.
    """

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        proxy: KernelRuleProxy,
        node: NodeContext,
        min_sync_period_s: float = 0.0,
        sync_period_s: float = DEFAULT_SYNC_PERIOD_S,
        metrics: ProxyMetrics | None = None,
        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    ) -> None:
        self.cluster, self.namespace, self.proxy, self.node = cluster, namespace, proxy, node
        self.min_sync_period_s, self.sync_period_s = min_sync_period_s, sync_period_s
        self.metrics = metrics or ProxyMetrics()
        self.log = log
        self.started_s = time.time()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._triggers: list[float] = []
        self._seen_triggers: dict[str, str] = {}  # slice name -> its trigger annotation
        self._incarnations = Incarnations()
        self._services: Watched | None = None
        self._slices: Watched | None = None
        self.syncs = 0

    def start(self) -> None:
        self.proxy.start(self.node)
        self._services = Watched(
            self.cluster,
            self.cluster.core.list_namespaced_service,
            self.namespace,
            "",
            "services",
            on_change=lambda kind, item: self._changed(SERVICE_CHANGES),
        )
        self._slices = Watched(
            self.cluster,
            self.cluster.discovery.list_namespaced_endpoint_slice,
            self.namespace,
            SERVICE_NAME_LABEL,
            "endpointslices",
            on_change=self._slice_changed,
        )
        self._services.start()
        self._slices.start()
        self._dirty.set()

    def _slice_changed(self, kind: str, item: Any) -> None:
        """Record when the change behind a slice happened (for the programming-latency
        histogram) and ask for a sync. A trigger time already recorded for the slice (a re-list
        or a re-watch delivers the same object again) and a deletion record nothing
        (`EndpointsChangeTracker.EndpointSliceUpdate`)."""
        name = item.metadata.name
        annotation = (item.metadata.annotations or {}).get(TRIGGER_TIME_ANNOTATION, "")
        with self._lock:
            if kind == "DELETED":
                self._seen_triggers.pop(name, None)
            elif name not in self._seen_triggers or self._seen_triggers[name] != annotation:
                added = name not in self._seen_triggers
                self._seen_triggers[name] = annotation
                when = trigger_time(item, added)
                if when is not None and when > self.started_s:
                    self._triggers.append(when)
        self._changed(ENDPOINT_CHANGES)

    def _changed(self, gauge: str) -> None:
        with self._lock:
            self.metrics.pending[gauge] += 1
        self._dirty.set()

    def stop(self) -> None:
        """Make `run()` return (at once, or after the sync in progress)."""
        self._stop.set()
        self._dirty.set()

    def run(self) -> None:
        stop = self._stop
        last_sync_s = -float("inf")
        while not stop.is_set():
            self._dirty.wait(self.sync_period_s)
            if stop.is_set():
                return
            wait_s = last_sync_s + self.min_sync_period_s - time.monotonic()
            if wait_s > 0 and stop.wait(wait_s):
                return
            self._dirty.clear()
            last_sync_s = time.monotonic()
            try:
                self.sync_once()
            except HarnessError as error:
                self.log(f"{PROGRAM}: sync failed, retrying: {error}")
                self._dirty.set()
                stop.wait(RETRY_AFTER_FAILURE_S)

    def sync_once(self) -> None:
        """Bring the proxy's Services and slices to what is watched, program it, and record
        the metrics of a successful sync."""
        assert self._services is not None and self._slices is not None
        with self._lock:  # what changes from here on is the next sync's
            self.metrics.pending = dict.fromkeys(PENDING, 0)
        services = [s for s in map(to_model_service, self._services.items()) if s is not None]
        slices = [
            s
            for s in (to_model_slice(i, self._incarnations, {}) for i in self._slices.items())
            if s is not None
        ]
        with self._lock:
            triggers, self._triggers = self._triggers, []
        started = time.monotonic()
        try:
            self._update(services, slices)
            self.proxy.sync()
        except BaseException:
            with self._lock:
                self._triggers = triggers + self._triggers
            raise
        self.metrics.sync_duration.observe(time.monotonic() - started)
        now_s = time.time()
        for when in triggers:
            self.metrics.programming.observe(max(0.0, now_s - when))
        self.metrics.last_sync_s = now_s
        self.syncs += 1

    def _update(self, services: Sequence[Service], slices: Sequence[EndpointSlice]) -> None:
        proxy = self.proxy
        reconcile(
            proxy.services,
            {s.name: s for s in services},
            proxy.on_service_add,
            proxy.on_service_update,
            proxy.on_service_delete,
        )
        reconcile(
            proxy.slices,
            {slice_key(s): s for s in slices},
            proxy.on_endpoint_slice_add,
            proxy.on_endpoint_slice_update,
            proxy.on_endpoint_slice_delete,
        )

    def close(self) -> None:
        for watched in (self._slices, self._services):
            if watched is not None:
                watched.stop()
        self.proxy.stop()


# -- the command -----------------------------------------------------------------------------------
def seconds(text: str) -> float:
    """A duration as kube-proxy writes it (`1s`, `500ms`, `0`) or plain seconds."""
    value = text.strip()
    try:
        if value.endswith("ms"):
            return float(value[:-2]) / 1000
        if value.endswith("s"):
            return float(value[:-1])
        if value.endswith("m"):
            return float(value[:-1]) * 60
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 1s, 500ms)") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROGRAM,
        description="The harness's reference proxy driven from the Kubernetes API: a stand-in"
        " for kube-proxy where none is installed (not kube-proxy).",
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (its context's namespace is watched)")
    p.add_argument("--hostname-override", help="this node's name (default: the hostname)")
    p.add_argument("--proxy-mode", choices=sorted(MODES), default="iptables")
    p.add_argument("--min-sync-period", type=seconds, default=0.0, metavar="DURATION")
    p.add_argument("--sync-period", type=seconds, default=DEFAULT_SYNC_PERIOD_S, metavar="DURATION")
    p.add_argument("--metrics-bind-address", default=DEFAULT_BIND_ADDRESS, metavar="HOST:PORT")
    p.add_argument("--namespace", help="namespace to watch (default: the kubeconfig context's)")
    p.add_argument(
        "--mutant", choices=sorted(MUTANTS), help="a disclosed, deliberately broken variant"
    )
    p.add_argument("--version", action="store_true", help="print the version line and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.version:
        print(version_line(args.mutant))
        return 0
    standin: StandIn | None = None
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        if standin is not None:
            standin.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server: ThreadingHTTPServer | None = None
    try:
        netns = current_netns()
        node = NodeContext(
            node=args.hostname_override or os.uname().nodename,
            netns=netns,
            prefix=os.environ.get(PREFIX_ENVIRONMENT) or netns.split("-", 1)[0],
            workdir=Path(tempfile.mkdtemp(prefix=f"{PROGRAM}-")),
        )
        cluster = connect(args.kubeconfig, kind_hint=False)
        namespace = args.namespace or context_namespace(args.kubeconfig)
        metrics = ProxyMetrics()
        standin = StandIn(
            cluster,
            namespace,
            proxy_class(args.proxy_mode, args.mutant)(),
            node,
            args.min_sync_period,
            args.sync_period,
            metrics,
        )
        server = serve_metrics(metrics, args.metrics_bind_address)
        standin.start()
        print(f"{version_line(args.mutant)}: syncing namespace {namespace} in {netns}", flush=True)
        if stopping.is_set():  # a signal before the stand-in existed
            standin.stop()
        standin.run()
    except UsageError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (HarnessError, OSError) as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return EXIT_HARNESS
    finally:
        if standin is not None:
            standin.close()
        if server is not None:
            server.shutdown()
    return 0


def run() -> None:
    """The console script's entry point."""
    raise SystemExit(main())


if __name__ == "__main__":
    run()
