"""`harness-kube-proxy`, the stand-in for kube-proxy, and `--pods local` end to end.

Without root: the conversions from API objects, the trigger times, the flags and that it refuses
to run outside a named network namespace. With root: kmock plus `FakeCluster(kubelet=False)`
(the EndpointSlice controller and IP allocator) plus the kube target with `--pods local`, whose
`--proxy-command` is the stand-in: a short search passes on it, its metrics are scraped and
reported beside the harness's latency, and its disclosed no-REJECT mutant is caught on
`reject-when-empty` with a shrunk counterexample.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fakecluster import FakeCluster
from mockapi import MockApiServer

from harness.conformance import Status, SuiteResult, options_for, run_target
from harness.errors import UsageError
from harness.events import CreateService, Event
from harness.kube.api import Cluster
from harness.kube.external import LOCAL_PODS
from harness.kube.metrics import METRIC, SYNC_METRIC, bind_address, metrics_text, parse
from harness.kube.proxy_sync import PENDING, sync_state_from_metrics
from harness.kube.standin import (
    TRIGGER_TIME_ANNOTATION,
    ProxyMetrics,
    current_netns,
    main,
    seconds,
    to_model_service,
    trigger_time,
    version_line,
)
from harness.model.objects import Affinity, TrafficPolicy, labels_of
from harness.profiles import PROFILES
from harness.registry import TargetOptions
from harness.runner import RunConfig, Runner
from harness.targets.kube import KubeTarget


def _service(**spec: Any) -> Any:
    defaults: dict[str, Any] = {
        "cluster_ip": "10.96.0.12",
        "ports": [SimpleNamespace(name="http", port=80, target_port="http", protocol="TCP")],
        "selector": {"app": "web"},
        "session_affinity": None,
        "session_affinity_config": None,
        "publish_not_ready_addresses": None,
        "internal_traffic_policy": None,
    }
    return SimpleNamespace(
        metadata=SimpleNamespace(name="web"), spec=SimpleNamespace(**{**defaults, **spec})
    )


def test_services_convert_as_kube_proxy_reads_them() -> None:
    service = to_model_service(_service())
    assert service is not None
    assert (service.cluster_ip, service.selector) == ("10.96.0.12", (("app", "web"),))
    assert service.ports[0].target_port == "http"
    assert service.internal_traffic_policy == TrafficPolicy.CLUSTER
    affinity = SimpleNamespace(client_ip=SimpleNamespace(timeout_seconds=30))
    sticky = to_model_service(
        _service(
            session_affinity="ClientIP",
            session_affinity_config=affinity,
            internal_traffic_policy="Local",
        )
    )
    assert sticky is not None
    assert (sticky.session_affinity, sticky.affinity_timeout_s) == (Affinity.CLIENT_IP, 30)
    assert sticky.internal_traffic_policy == TrafficPolicy.LOCAL
    # kube-proxy's ShouldSkipService: headless and not-yet-allocated Services get no rules
    assert to_model_service(_service(cluster_ip="None")) is None
    assert to_model_service(_service(cluster_ip=None)) is None


def test_trigger_time_from_the_annotation_else_creation() -> None:
    created = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    annotated = SimpleNamespace(
        metadata=SimpleNamespace(
            annotations={TRIGGER_TIME_ANNOTATION: "2026-01-01T00:00:01.5Z"},
            creation_timestamp=created,
        )
    )
    assert trigger_time(annotated, added=False) == created.timestamp() + 1.5
    bare = SimpleNamespace(metadata=SimpleNamespace(annotations=None, creation_timestamp=created))
    assert trigger_time(bare, added=True) == created.timestamp()
    assert trigger_time(bare, added=False) is None  # an update without a trigger time: none


def test_flags_version_and_metrics_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert (seconds("1s"), seconds("500ms"), seconds("0")) == (1.0, 0.5, 0.0)
    assert main(["--version"]) == 0
    line = capsys.readouterr().out
    assert "stand-in for kube-proxy, not kube-proxy" in line and "MUTANT" not in line
    assert "DISCLOSED MUTANT no-reject" in version_line("no-reject")
    metrics = ProxyMetrics()
    metrics.pending[PENDING[0]] = 2
    before = sync_state_from_metrics(metrics.text(), 1.0)  # no sync yet: not synced
    assert before is not None and not before.synced
    metrics.last_sync_s = 5.0
    pending = sync_state_from_metrics(metrics.text(), 4.0)
    assert pending is not None and not pending.synced and "endpoint 2" in pending.source
    metrics.sync_duration.observe(0.003)
    metrics.programming.observe(0.3)
    text = metrics.text()
    sync, programming = parse(text, SYNC_METRIC), parse(text, METRIC)
    assert sync is not None and (sync.count, sync.quantile(0.5)) == (1, 0.004)
    assert programming is not None and programming.quantile(0.99) == 0.5
    assert bind_address("x --metrics-bind-address=0.0.0.0:10300") == ("127.0.0.1", 10300)
    assert bind_address("x --metrics-bind-address 127.0.0.2:1") == ("127.0.0.2", 1)
    assert bind_address("kube-proxy --v=2") == ("127.0.0.1", 10249)


def test_it_refuses_to_run_outside_a_named_namespace(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="only inside a named network namespace"):
        current_netns(netns_dir=tmp_path)


# -- end to end: root, network namespaces ---------------------------------------------------------
needs_netns = pytest.mark.skipif(
    os.geteuid() != 0
    or shutil.which("ip") is None
    or shutil.which("curl") is None
    or shutil.which("iptables-restore") is None,
    reason="needs root, ip, curl and iptables (network namespaces)",
)
METRICS_ADDRESS = "127.0.0.1:10251"


def standin_command(*extra: str) -> str:
    """The stand-in as a `--proxy-command` (run with this interpreter, so no install is
    needed), with kube-proxy's placeholders."""
    return (
        f"exec {sys.executable} -m harness.kube.standin --kubeconfig {{kubeconfig}}"
        f" --hostname-override {{node}} --metrics-bind-address {METRICS_ADDRESS} " + " ".join(extra)
    )


def _target(cluster: Cluster, command: str) -> KubeTarget:
    """The kube target with `--pods local` and `command` as its proxy; a fresh prefix (and so
    namespace) per open, since kmock keeps a deleted namespace's objects."""
    return KubeTarget(TargetOptions(pods="local", proxy_command=command), cluster=cluster)


def run_on_standin(
    url: str, cluster: Cluster, sequence: Sequence[Event], drawn: Callable[[KubeTarget], bool]
) -> tuple[Runner, list[Any]]:
    """`sequence` run on the kube target with `--pods local` and the stand-in (iptables) on
    kmock at `url`, after asserting `drawn(target)` (what the search would draw there); the
    runner and its step results. The target is closed afterwards."""
    target = _target(cluster, standin_command("--proxy-mode iptables"))
    with FakeCluster(url, kubelet=False):
        target.open()
        try:
            assert drawn(target)
            runner = Runner(target, RunConfig())
            runner.reset()
            return runner, list(runner.run(list(sequence)))
        finally:
            target.close()


GRACEFUL = pytest.mark.parametrize(
    "mock_api", [{"graceful_pods": True, "keep_requests": False}], indirect=True
)
"""kmock that keeps gracefully deleted pods terminating (the generated events delete pods with
grace periods) and forgets answered requests (its request log makes each request slower than
the last; see mockapi.py)."""


def search(
    url: str, target: KubeTarget, tmp_path: Path, properties: tuple[str, ...], **changes: Any
) -> tuple[SuiteResult, set[str]]:
    """A short quick-profile search of `target` (seed, examples, steps and suite options in
    `changes`) with the fake control plane running, and the run prefixes it used."""
    sizes = {key: changes.pop(key) for key in ("seed", "examples", "steps", "deadline_s")}
    with FakeCluster(url, kubelet=False):
        options = options_for(
            target,
            profile=PROFILES["quick"],
            properties=properties,
            failures_dir=tmp_path,
            **sizes,
        )
        timeout_s = changes.pop("request_timeout_s", options.config.request_timeout_s)
        config = dataclasses.replace(options.config, request_timeout_s=timeout_s)
        options = dataclasses.replace(options, config=config, **changes)
        prefixes: set[str] = set()
        suite = run_target(target, options, on_progress=lambda *_: prefixes.add(target.prefix))
    return suite, prefixes


@needs_netns
@pytest.mark.netns
@pytest.mark.slow
@GRACEFUL
def test_a_short_search_passes_on_the_standin_and_its_metrics_are_reported(
    mock_api: MockApiServer, cluster: Cluster, tmp_path: Path
) -> None:
    from harness.local.cleanup import clean

    target = _target(cluster, standin_command("--proxy-mode iptables"))
    properties = ("endpoints", "reject-when-empty", "no-stale-traffic", "availability")
    suite, prefixes = search(
        mock_api.url,
        target,
        tmp_path,
        (*properties, "node-port"),
        seed=5,
        examples=2,
        steps=6,
        deadline_s=30.0,
    )
    assert suite.error is None, suite.error
    assert {r.name: r.message for r in suite.failed} == {}
    assert all(r.status == Status.PASSED for r in suite.results if r.name in properties)
    # one node namespace: nothing is outside another node, said with the way to get it
    (node_port,) = [r for r in suite.results if r.name == "node-port"]
    assert node_port.status == Status.SKIPPED and node_port.message == LOCAL_PODS
    assert suite.stats.examples == 2 and suite.stats.events > 0
    metrics = suite.proxy_metrics
    assert metrics is not None and metrics["available"], metrics
    assert metrics["source"] == f"http://{METRICS_ADDRESS}/metrics in the node namespace"
    syncs = metrics["sync_proxy_rules_duration_seconds"]
    assert syncs["count"] > 0 and syncs["p50_le_s"] is not None
    programming = metrics["network_programming_duration_seconds"]
    assert programming["count"] > 0 and programming["p99_le_s"] is not None
    line = metrics_text(metrics)
    assert line is not None and "rule syncs p50/p99 <=" in line
    assert cluster.core.list_node().items == []
    assert prefixes and all(clean(prefix, force=True) == [] for prefix in prefixes)


@needs_netns
@pytest.mark.netns
@pytest.mark.slow
@GRACEFUL
def test_the_no_reject_mutant_is_caught_on_reject_when_empty(
    mock_api: MockApiServer, cluster: Cluster, tmp_path: Path
) -> None:
    target = _target(cluster, standin_command("--mutant no-reject"))
    # a short deadline, one confirmation and a short shrink: the test is about being caught
    # (a missing REJECT leaves every connection to wait out its timeout), not about replays.
    # The search starts from a Service without endpoints (a fixed sequence), so that what is
    # tested is the catch, not whether two drawn examples happen to reach that state.
    suite, _ = search(
        mock_api.url,
        target,
        tmp_path,
        ("reject-when-empty",),
        seed=1,
        examples=3,
        steps=4,
        fixed=((CreateService("svc-a", labels_of({"app": "web"})),),),
        deadline_s=5.0,
        request_timeout_s=0.25,  # a refusal comes at once; waiting longer changes no verdict
        confirmations=1,
        shrink_tries=5,
        stop_at_first=True,
    )
    assert suite.error is None, suite.error
    (failure,) = suite.failed
    assert failure.name == "reject-when-empty"
    assert 1 <= len(failure.counterexample) <= 3, failure.counterexample
    assert "instead of being refused" in failure.message, failure.message
    assert failure.failure_file is not None and failure.failure_file.exists()


MODE_RULES = {"iptables": ["iptables-save"], "nftables": ["nft", "list", "tables"]}
MODE_MARK = {"iptables": ":KUBE-SERVICES", "nftables": "-kube-proxy"}


@needs_netns
@pytest.mark.netns
@GRACEFUL
@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_sigterm_removes_the_rules(mock_api: MockApiServer, cluster: Cluster, mode: str) -> None:
    """The stand-in, started by the kubelet in the node namespace, programs kube-proxy's
    layout of its mode, serves its metrics there, and leaves none of its rules once SIGTERM
    ended it (exit 0)."""
    from harness.kube.metrics import read_in_netns
    from harness.proxies.process import netns_argv

    if shutil.which(MODE_RULES[mode][0]) is None:
        pytest.skip(f"needs {MODE_RULES[mode][0]}")

    def rules(netns: str) -> str:
        argv = netns_argv(netns, MODE_RULES[mode])
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    command = standin_command(f"--proxy-mode {mode}")
    target = _target(cluster, command)
    with FakeCluster(mock_api.url, kubelet=False):
        target.open()
        try:
            netns = f"{target.prefix}-node"
            text = read_in_netns(netns, bind_address(command))
            assert text is not None
            # kube-proxy's sync evidence, as convergence reads it: synced, nothing pending
            state = sync_state_from_metrics(text, changed_at_s=0.0)
            assert state is not None and state.synced, state
            assert MODE_MARK[mode] in rules(netns)
            process = target.runtime._proxy  # type: ignore[union-attr]
            process.stop()  # SIGTERM to its process group, as the kubelet's close() does
            assert process.returncode() == 0
            assert MODE_MARK[mode] not in rules(netns)
        finally:
            target.close()


# -- the node routes the cluster's Service range (issue 15, item 1) ------------------------------
def test_the_service_range_comes_from_the_cluster(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    from kubernetes import client

    from harness.kube.kubelet import service_ranges

    assert service_ranges(cluster) == (
        ("10.96.0.0/16",),
        "the harness's default (the cluster shows none)",
    )
    assert service_ranges(cluster, "10.0.0.7/24") == (("10.0.0.0/24",), "as given")
    with pytest.raises(UsageError, match="not an IPv4 range"):
        service_ranges(cluster, "fd00::/108")
    # one that serves them (v1.33+): exactly their IPv4 ranges
    networking = client.NetworkingV1Api(cluster.api_client)
    networking.create_service_cidr(
        {"metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.100.0.0/16", "fd00:10::/108"]}}
    )
    assert service_ranges(cluster) == (("10.100.0.0/16",), "from the ServiceCIDR objects")


@needs_netns
@pytest.mark.netns
def test_the_node_routes_a_non_default_service_range(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    """--pods local on a cluster whose Service range is not the harness's: the node namespace
    routes the cluster's range (so REJECT sees untranslated packets), not 10.96.0.0/16."""
    from kubernetes import client

    from harness.kube.kubelet import LocalKubelet
    from harness.local.names import RunNames
    from harness.proxies.process import netns_argv

    client.NetworkingV1Api(cluster.api_client).create_service_cidr(
        {"metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.100.0.0/16"]}}
    )
    target = _target(cluster, "")
    target.open()
    try:
        assert isinstance(target.runtime, LocalKubelet)
        assert target.runtime.service_ranges == ("10.100.0.0/16",)
        sink = RunNames(target.prefix).service_sink  # the node's Service-range sink
        argv = netns_argv(f"{target.prefix}-node", ["ip", "-4", "route", "show", "dev", sink])
        routes = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        assert "10.100.0.0/16" in routes and "10.96.0.0/16" not in routes
        # a VIP outside every routed range (an older server's other range): its /12 is routed
        target.runtime.service_allocated("10.200.0.5")
        target.runtime.service_allocated("10.100.3.4")  # inside: nothing more
        routes = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        assert "10.192.0.0/12" in routes
        assert target.runtime.service_ranges == ("10.100.0.0/16", "10.192.0.0/12")
    finally:
        target.close()


@needs_netns
@pytest.mark.netns
@pytest.mark.slow
@GRACEFUL
def test_the_kube_target_reports_the_proxys_own_sync_state_from_its_metrics(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    """Issue 15 item 3 on the kube target: after a change, the target says the proxy has not
    programmed it until the proxy's metrics show a sync after it with nothing pending. The
    stand-in syncs at most once every 5 s, so right after a sync a new change must wait."""
    import time

    from harness.events import CreateService, Scale
    from harness.model.objects import labels_of

    target = _target(cluster, standin_command("--min-sync-period 5s"))

    def settled(deadline_s: float) -> Any:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            state = target.sync_state()
            if state is not None and state.synced:
                return state
            time.sleep(0.1)
        return target.sync_state()

    with FakeCluster(mock_api.url, kubelet=False):
        target.open()
        try:
            target.apply(CreateService("svc", labels_of({"app": "web"})))
            target.apply(Scale("web", 1))
            first = settled(20.0)
            assert first is not None and first.synced, first
            assert "kube-proxy's metrics" in first.source
            target.apply(Scale("web", 2))
            end = time.monotonic() + 4.0
            while len(target.endpoint_slices("svc")[0].endpoints) < 2:
                assert time.monotonic() < end, "the fake control plane did not publish"
                time.sleep(0.05)
            waiting = target.sync_state()
            assert waiting is not None and not waiting.synced, waiting  # within its period
            final = settled(20.0)
            assert final is not None and final.synced, final
        finally:
            target.close()
