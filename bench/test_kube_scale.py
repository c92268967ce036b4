"""Benchmark (not a unit test): setup and teardown of N pods and M Services through the kube
target's API path, against the same on the local cluster.

Goal (issue 15, "Scale on a real API server"): 1,000 pods and 200 Services set up and torn down
through the API within 2x of the time the local cluster takes for the same, and no object of the
run left after `harness clean --kube`. The ratio is recorded beside the figures (`meets_goal`),
never asserted: it measures the machine's and the server's load as much as the harness.
Asserted, because it is correctness: every pod appears on the watch, every pod and Service is
gone after the teardown, and nothing of the run is left after the clean.

How, on each side, with the same events (M `create-service` and M `scale` of N/M pods each,
groups alternating between the model's two nodes):
- kube: open the target (namespace, Lease, watches, client pods), then *setup* =
  `apply_many` (the API writes at most `Writer.concurrency` in flight, retried on 429/5xx) until
  a watch on the run's backend pods shows every one; *teardown* = `reset` (concurrent deletes,
  then waits on the watches until pods and slices are gone). Then close, run `harness clean --kube
  --prefix RUN --kubeconfig K` (the command, in a child process), and list what is left.
- local (needs root; userspace proxy unless HARNESS_BENCH_KUBE_LOCAL_PROXY): setup =
  `apply_many` (every pod's namespace and server realised, one proxy sync); teardown = `reset`.

The API server is kmock unless HARNESS_KUBECONFIG names a cluster (bench/api_servers.py); kmock is
not a real API server, so there the kube figure is the harness's own overhead (plus an in-memory
server's), and the figure file and the printed line say so; `*_harness_cpu_s` is the CPU time of
this process (kmock runs in its own), the harness's own cost whatever the server.
Figures go to kube_scale.json in the run directory (bench/conftest.py).

Sizes: HARNESS_BENCH_KUBE_PODS and HARNESS_BENCH_KUBE_SERVICES (default 100 and 20; 10 and 2 in
the quick profile); the issue's size is 1000 and 200, which the nightly workflow runs on kind.
Run: `pytest bench/test_kube_scale.py -s`.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from api_servers import ApiServer, api_server, leftovers
from sizes import names, size

from harness.events import CreateService, Event, Scale
from harness.kube.objects import ROLE_LABEL, RUN_LABEL
from harness.kube.observe import Watched, wait_for_names
from harness.kube.writer import DEFAULT_CONCURRENCY
from harness.model.objects import NODES, labels_of
from harness.registry import TargetOptions
from harness.reporting.runs import write_figures
from harness.targets.kube import KubeTarget
from harness.targets.local import LocalTarget

PODS = size("KUBE_PODS", full=100, quick=10)
SERVICES = size("KUBE_SERVICES", full=20, quick=2)
LOCAL_PROXY = names("KUBE_LOCAL_PROXY", full="userspace", quick="userspace")[0]
CONCURRENCY = size("KUBE_CONCURRENCY", full=DEFAULT_CONCURRENCY, quick=DEFAULT_CONCURRENCY)
GOAL_RATIO = 2.0
SEEN_WITHIN_S = 120.0 + PODS * 0.2  # bound on the watch wait after the writes


def build_events(pods: int, services: int) -> list[Event]:
    """M Services, each selecting a group of pods/M pods; groups alternate between nodes."""
    per_service = max(pods // services, 1)
    events: list[Event] = []
    for index in range(services):
        group = f"g{index}"
        events.append(CreateService(f"s{index}", labels_of({"app": group})))
        events.append(Scale(group, per_service, node=NODES[index % len(NODES)]))
    return events


def measure_kube(server: ApiServer, events: list[Event]) -> dict[str, Any]:
    """Setup and teardown through the kube target; what the clean left (see the docstring)."""
    options = TargetOptions(extra={"startup_s": 300, "api_concurrency": CONCURRENCY})
    target = KubeTarget(options, cluster=server.cluster, pod_exec=server.pod_exec)
    figures: dict[str, Any] = {}
    if server.kubelet is not None:
        with server.kubelet:  # kmock: client pods become ready while the target opens
            target.open()
    else:
        target.open()
    namespace, run = target.namespace, target.prefix
    selector = f"{RUN_LABEL}={run},{ROLE_LABEL}=backend"
    cluster = server.cluster
    backends = Watched(cluster, cluster.core.list_namespaced_pod, namespace, selector, "pods")
    backends.start()
    try:
        mark, cpu = time.monotonic(), time.process_time()
        target.apply_many(events)
        figures["writes_s"] = time.monotonic() - mark
        pods = list(target.state.pods)
        figures["pods"], figures["services"] = len(pods), len(target.state.services)
        figures["not_seen"] = wait_for_names(backends, pods, True, SEEN_WITHIN_S)
        figures["setup_s"] = time.monotonic() - mark
        figures["setup_harness_cpu_s"] = time.process_time() - cpu
        mark, cpu = time.monotonic(), time.process_time()
        target.reset()
        figures["still_there"] = wait_for_names(backends, pods, False, SEEN_WITHIN_S)
        figures["teardown_s"] = time.monotonic() - mark
        figures["teardown_harness_cpu_s"] = time.process_time() - cpu
        figures["services_left"] = len(cluster.core.list_namespaced_service(namespace).items)
    finally:
        backends.stop()
        target.close()
    clean = [sys.executable, "-m", "harness.cli", "clean", "--kube", "--prefix", run]
    done = subprocess.run(
        [*clean, "--kubeconfig", server.kubeconfig], capture_output=True, text=True, timeout=300
    )
    figures["clean_exit_code"] = done.returncode
    figures["clean_said"] = " ".join((done.stdout + done.stderr).split())[-500:]
    figures["left_after_clean"] = leftovers(cluster, namespace, run)
    figures["total_s"] = figures["setup_s"] + figures["teardown_s"]
    return figures


def measure_local(events: list[Event]) -> dict[str, Any]:
    """Setup and teardown of the same events on the local cluster."""
    target = LocalTarget.from_spec(LOCAL_PROXY, TargetOptions())
    target.open()
    figures: dict[str, Any] = {"proxy": LOCAL_PROXY}
    try:
        mark = time.monotonic()
        target.apply_many(events)
        figures["setup_s"] = time.monotonic() - mark
        figures["pods"] = target.stats()["pods"]
        mark = time.monotonic()
        target.reset()
        figures["teardown_s"] = time.monotonic() - mark
    finally:
        target.close()
    figures["total_s"] = figures["setup_s"] + figures["teardown_s"]
    return figures


def test_setup_and_teardown_through_the_api_against_the_local_cluster(output_dir: Path) -> None:
    started = datetime.datetime.now(datetime.UTC)
    events = build_events(PODS, SERVICES)
    with api_server() as server:
        kube = measure_kube(server, events)
        description, mock = server.description, server.mock
    local: dict[str, Any] | None = None
    if os.geteuid() == 0:
        local = measure_local(events)
    ratio = kube["total_s"] / local["total_s"] if local and local["total_s"] > 0 else None
    figures = {
        "benchmark": "kube-scale",
        "api_server": description,
        "mock_api_server": mock,
        "sizes": {"pods": PODS, "services": SERVICES, "api_concurrency": CONCURRENCY},
        "goal": {"kube_over_local_at_most": GOAL_RATIO},
        "kube": _rounded(kube),
        "local": _rounded(local) if local else "skipped: the local cluster needs root",
        "kube_over_local": round(ratio, 3) if ratio is not None else None,
        "meets_goal": ratio is not None and ratio <= GOAL_RATIO,
    }
    print(json.dumps(figures))
    print(f"API server: {description}")
    print(f"wrote {write_figures(output_dir, 'kube_scale.json', figures, started)}")
    assert kube["pods"] == PODS // SERVICES * SERVICES and kube["services"] == SERVICES
    assert kube["not_seen"] == [] and kube["still_there"] == [], kube
    assert kube["services_left"] == 0, kube
    assert kube["clean_exit_code"] == 0, kube["clean_said"]
    assert kube["left_after_clean"] == [], kube["left_after_clean"]
    if local is not None:
        assert local["pods"] == kube["pods"], local


def _rounded(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
