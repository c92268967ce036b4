"""Benchmark (not a unit test): requests/s and latency through a real cluster's Service VIP,
with locust running *in the cluster* (a headless master and worker pods spread over the nodes,
`harness.kube.loadgen`), beside the same generator's ceiling against one pod directly.

Only against a real cluster (HARNESS_KUBECONFIG, which the nightly workflow points at kind in
both kube-proxy modes): a mock API server has no data plane, so without one this is skipped with
that reason. It opens the kube target, creates Service `web` over PODS agnhost pods, and for
keep-alive and fresh connections runs the harness's locustfile (bench/locustfile.py through
bench/kube_locust.py) against one pod's IP (the ceiling: same locustfile, workers, users and
connection mode, no proxy) and then against the VIP. Every ratio compares like with like
(`load_results.ratio_to`). Figures go to kube_throughput.json in the run directory, in the shape
of throughput.json's results (`harness report` shows them beside the local proxies'); the proxy
is named by the cluster (`kube:` and the API server's address), since the harness cannot know
for sure which proxy a cluster runs. No rate or ratio is asserted; asserted, because it must hold
with PODS ready pods: every run answered, no errors, fresh connections reach every pod.

Bounds: locust's `-t`, and every pod's `activeDeadlineSeconds` (`harness.kube.loadgen`); the pods
are deleted after each run and the namespace at the end, also on failure.

Knobs (bench/sizes.py; full, quick): HARNESS_BENCH_KUBE_LOCUST_WORKERS (4; 2),
HARNESS_BENCH_KUBE_LOCUST_SECONDS (10; 5), HARNESS_BENCH_LOCUST_USER (fast).
Run: `HARNESS_KUBECONFIG=~/.kube/config pytest bench/test_kube_throughput.py -s -p no:kmock`.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from api_servers import api_server
from kube_locust import KubeLoadRunFailed, plan, result
from load_results import Generator, distribution, ratio_to, summarise
from sizes import size

from harness.errors import HarnessError
from harness.events import CreateService, Scale
from harness.model.objects import labels_of
from harness.registry import TargetOptions
from harness.reporting.runs import iso_time, machine, write_figures
from harness.targets.kube import KubeTarget

PODS = 10
USERS = 10
WORKERS = size("KUBE_LOCUST_WORKERS", full=4, quick=2)
SECONDS = size("KUBE_LOCUST_SECONDS", full=10, quick=5)
USER = os.environ.get("HARNESS_BENCH_LOCUST_USER", "fast")
SERVICE = "web"
READY_WITHIN_S = 300.0


def _ready_pod_ips(target: KubeTarget) -> dict[str, str]:
    """pod name -> address of every ready endpoint of SERVICE, as its slices say."""
    return {
        endpoint.backend.pod: endpoint.address
        for endpoint_slice in target.endpoint_slices(SERVICE)
        for endpoint in endpoint_slice.endpoints
        if endpoint.ready
    }


def _wait_ready(target: KubeTarget) -> dict[str, str]:
    """Bounded wait until every pod is a ready endpoint (the slices come from a watch)."""
    deadline = time.monotonic() + READY_WITHIN_S
    while len(ready := _ready_pod_ips(target)) < PODS:
        if time.monotonic() > deadline:
            raise HarnessError(f"only {len(ready)} of {PODS} pods became ready endpoints")
        time.sleep(1.0)
    return ready


def _run(target: KubeTarget, url: str, fresh: bool) -> dict[str, Any]:
    generator = Generator("locust", WORKERS, USERS, f"locustfile.py ({USER}, in the cluster)")
    try:
        outputs = target.in_cluster_load().run(plan(url, USERS, WORKERS, SECONDS, fresh, USER))
        return summarise([result(outputs)], generator)
    except (KubeLoadRunFailed, HarnessError) as error:
        return {"tool": "locust", "generator": generator.describe(), "failed": str(error)}


def measure(target: KubeTarget) -> dict[str, Any]:
    target.apply_many([CreateService(SERVICE, labels_of({"app": SERVICE})), Scale(SERVICE, PODS)])
    pods = _wait_ready(target)
    port = target.state.services[SERVICE].ports[0].port
    vip_url = f"http://{target.service_ip(SERVICE)}:{port}"
    first = sorted(pods)[0]
    pod_port = next(p.port for p in target.state.pods[first].ports if p.name == "http")
    pod_url = f"http://{pods[first]}:{pod_port}"
    runs: dict[str, dict[str, Any]] = {}
    for mode, fresh in (("keepalive", False), ("fresh", True)):
        ceiling = _run(target, pod_url, fresh)
        via_vip = _run(target, vip_url, fresh)
        runs[f"locust_pod_{mode}"] = ceiling
        runs[f"locust_vip_{mode}"] = (
            ratio_to(via_vip, ceiling, f"locust_pod_{mode}")
            if "failed" not in via_vip and "failed" not in ceiling
            else via_vip
        )
    for name, figures in runs.items():
        backends = figures.pop("backends", {})
        if "_vip_" in name and backends:
            figures["distribution"] = distribution(backends, sorted(pods))
    return {"runs": runs}


def test_throughput_in_a_real_cluster(output_dir: Path) -> None:
    if not os.environ.get("HARNESS_KUBECONFIG"):
        pytest.skip("needs a real cluster with a data plane: set HARNESS_KUBECONFIG")
    started, started_at = time.monotonic(), datetime.datetime.now(datetime.UTC)
    with api_server() as server:
        target = KubeTarget(TargetOptions(), cluster=server.cluster, pod_exec=server.pod_exec)
        target.open()
        try:
            figures = measure(target)
        finally:
            target.close()
    entry = {"proxy": f"kube ({server.description})", "pods": PODS, **figures}
    report = {
        "benchmark": "requests/s through a real cluster's Service VIP, locust in the cluster",
        "started_at": iso_time(started_at),
        "host": machine(),
        "settings": {"pods": PODS, "connections": USERS, "locust_workers": WORKERS,
                     "locust_seconds": SECONDS, "locust_user": USER, "latency_unit": "us",
                     "client": "locust pods in the cluster, spread over its nodes"},
        "duration_s": round(time.monotonic() - started, 1),
        "results": [entry],
    }  # fmt: skip
    print(f"wrote {write_figures(output_dir, 'kube_throughput.json', report, started_at)}")
    print(json.dumps({name: run.get("requests_per_s") for name, run in figures["runs"].items()}))
    breaches = [
        f"{name}: {run.get('failed') or str(run['errors']) + ' errors'}"
        for name, run in figures["runs"].items()
        if "failed" in run or run["errors"]
    ]
    fresh = figures["runs"]["locust_vip_fresh"].get("distribution")
    if fresh is not None and fresh["pods_reached"] != PODS:
        breaches.append(f"fresh connections reached {fresh['pods_reached']} of {PODS} pods")
    assert not breaches, breaches
