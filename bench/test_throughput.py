"""Benchmark (not a unit test): requests/s and latency through each proxy's Service VIP, beside
the load generator's own ceiling measured in the same run.

"Always benchmark against the load generator's own ceiling on the same machine" (reference
anchors, section 3): locust is CPU-bound (about 5-7k req/s per worker process here) while wrk
reaches 34-64k, so a locust figure alone measures locust. For each proxy in
HARNESS_BENCH_PROXIES (default: all five) this opens a local target with one Service over 10
ready pods and, from inside client-1's namespace (never from the root namespace), measures:

- wrk, keep-alive and fresh connections (`Connection: close`), to one pod directly (the
  ceiling: same tool, same mode, no proxy) and through the VIP, rounds interleaved
  (pod, VIP, pod, VIP, ...) so that drift on this shared machine hits both alike;
- locust, distributed (a headless master and LOCUST_WORKERS worker processes, see
  bench/load_generators.py) running bench/locustfile.py (FastHttpUser; HttpUser on request), in
  both modes to one pod (locust's own ceiling, same workers) and through the VIP, with per-pod
  counts (Jain's index, max/mean) summed over the workers.

Once per session, on the first proxy's cluster, it calibrates the generator against one pod
with keep-alive (`calibration` in throughput.json): the harness's locustfile with each worker
count of LOCUST_SCALING (where locust stops scaling on this machine), and the bare one-task
FastHttpUser locustfile (bench/locustfile_bare.py) with LOCUST_WORKERS workers right after the
harness's run with as many (what the harness's locustfile costs).

Every latency is p50/p90/p99 in microseconds (wrk's `--latency` distribution; for locust, the
workers' own histograms, not locust's whole milliseconds). Figures are medians (wrk: over
rounds; locust: over whole seconds of one run). Every ratio compares like with like
(`load_results.ratio_to`): a VIP run with the pod run of the same tool, settings and worker
count measured beside it (wrk: the median of each round's VIP/pod ratio); the calibration's
ratios vary exactly one setting (the worker count, or the locustfile). They are written to
throughput.json in the run directory (bench/conftest.py). No rate or ratio is asserted: timings
measure the machine's load too, so they belong in the report. This machine is shared: rounds a
second apart were seen to differ by 30 %, so a ratio near 1 means "no cost measurable here",
and one above 1 is noise, not a proxy faster than no proxy.
Asserted, because it must hold with 10 ready pods: every run answered, no errors through any
proxy, fresh connections reach all 10 pods, and every figure's structure (latencies in µs
from the harness's runs, ratios from runs of one session). Fairness per keep-alive connection
is reported only (a connection is pinned to one pod by design).

Bounds: every run stops by itself and is killed past a margin (bench/load_generators.py); the
default run takes about a minute per proxy, plus the calibration. The target is closed,
namespaces and all, even on failure.

Run: `pytest bench/test_throughput.py -s -p no:kmock`; knobs (bench/sizes.py; full, quick):
HARNESS_BENCH_PROXIES (all five; iptables), HARNESS_BENCH_WRK_SECONDS (1; 1),
HARNESS_BENCH_WRK_ROUNDS (3; 1), HARNESS_BENCH_LOCUST_SECONDS (4; 2),
HARNESS_BENCH_LOCUST_WORKERS (one per core, os.cpu_count(), in both), HARNESS_BENCH_LOCUST_SCALING
(1,2,3; 1,2: the worker counts calibrated), HARNESS_BENCH_LOCUST_CALIBRATION_ROUNDS (3; 1),
HARNESS_BENCH_LOCUST_USER (fast; http runs locust's
HttpUser instead of FastHttpUser).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import load_generators as generators
import pytest
from figure_rules import structure_problems
from load_results import (
    Generator,
    LoadResult,
    distribution,
    paired_ratio,
    ratio_to,
    scaling,
    summarise,
)
from sizes import counts, names, size

from harness.errors import HarnessError
from harness.events import CreateService, Scale
from harness.model.objects import labels_of
from harness.registry import TargetOptions
from harness.reporting.runs import iso_time, machine, write_figures
from harness.targets.local import LocalTarget

pytestmark = pytest.mark.netns

PROXIES = names("PROXIES", full="iptables,nftables,userspace,nginx,haproxy", quick="iptables")
PODS = 10
WRK_SECONDS = size("WRK_SECONDS", full=1, quick=1)
WRK_ROUNDS = size("WRK_ROUNDS", full=3, quick=1)
WRK_THREADS = 2
CONNECTIONS = 10  # wrk connections and locust users alike
LOCUST_SECONDS = size("LOCUST_SECONDS", full=4, quick=2)
CPUS = os.cpu_count() or 1
LOCUST_WORKERS = size("LOCUST_WORKERS", full=CPUS, quick=CPUS)
LOCUST_SCALING = counts("LOCUST_SCALING", full="1,2,3", quick="1,2")
CALIBRATION_ROUNDS = size("LOCUST_CALIBRATION_ROUNDS", full=3, quick=1)
LOCUST_USER = os.environ.get("HARNESS_BENCH_LOCUST_USER", "fast")  # or http (HttpUser)
CLIENT = "client-1"
WRK = Generator("wrk", WRK_THREADS, CONNECTIONS)


@dataclass(frozen=True)
class Setup:
    """Where one proxy's runs go: the client namespace, the VIP and one pod behind it (base
    URLs without a path: locust joins `/` to them, wrk gets `URL/`)."""

    proxy: str
    netns: str
    vip_url: str
    pod_url: str
    pods: tuple[str, ...]


@contextmanager
def service_with_pods(proxy: str) -> Iterator[Setup]:
    """A local target running `proxy` with Service `web` over PODS ready pods; closed after."""
    target = LocalTarget.from_spec(proxy, TargetOptions())
    target.open()
    try:
        target.apply_many([CreateService("web", labels_of({"app": "web"})), Scale("web", PODS)])
        service = target.state.services["web"]
        pods = sorted(target.state.pods.values(), key=lambda pod: pod.name)
        assert target.cluster is not None and pods[0].ip is not None
        port = next(p.port for p in pods[0].ports if p.name == "http")
        yield Setup(
            proxy=proxy,
            netns=target.cluster.clients[CLIENT].netns,
            vip_url=f"http://{service.cluster_ip}:{service.ports[0].port}",
            pod_url=f"http://{pods[0].ip}:{port}",
            pods=tuple(pod.name for pod in pods),
        )
    finally:
        target.close()


def wrk_pair(setup: Setup, mode: str, fresh: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ceiling, VIP): wrk rounds to one pod and through the VIP, interleaved. The VIP's ratio
    is the median of each round's VIP/pod ratio: adjacent rounds share the machine's load."""
    direct: list[LoadResult] = []
    via_vip: list[LoadResult] = []
    for _ in range(WRK_ROUNDS):
        for url, results in ((setup.pod_url, direct), (setup.vip_url, via_vip)):
            results.append(
                generators.wrk(setup.netns, url, WRK_SECONDS, WRK_THREADS, CONNECTIONS, fresh)
            )
    ceiling = summarise(direct, WRK)
    ratio = paired_ratio(via_vip, direct)
    return ceiling, ratio_to(summarise(via_vip, WRK), ceiling, f"wrk_pod_{mode}", ratio=ratio)


def locust_generator(workers: int, bare: bool = False) -> Generator:
    """The settings of a locust run: the harness's locustfile (with its user class) or the
    bare one, `workers` workers, CONNECTIONS users."""
    script = "locustfile_bare.py" if bare else f"locustfile.py ({LOCUST_USER})"
    return Generator("locust", workers, CONNECTIONS, script)


def locust_once(
    setup: Setup, url: str, fresh: bool, workdir: Path, workers: int, bare: bool = False
) -> LoadResult | str:
    """One locust run's result, or the one line why it gave no figures."""
    locustfile = generators.BARE_LOCUSTFILE if bare else generators.LOCUSTFILE
    try:
        return generators.locust(setup.netns, url, LOCUST_SECONDS, CONNECTIONS, fresh, workdir,
                                 workers, LOCUST_USER, locustfile)  # fmt: skip
    except generators.LoadRunFailed as error:
        return str(error)


def locust_summary(rounds: Sequence[LoadResult | str], generator: Generator) -> dict[str, Any]:
    """The summary of the rounds that gave figures; `failed` (the last reason) when none did."""
    results = [result for result in rounds if isinstance(result, LoadResult)]
    if not results:
        reason = next((r for r in reversed(rounds) if isinstance(r, str)), "no round ran")
        return {"tool": "locust", "generator": generator.describe(), "failed": reason}
    return summarise(results, generator)


def locust_run(setup: Setup, url: str, fresh: bool, workdir: Path, workers: int) -> dict[str, Any]:
    """One run of the harness's locustfile as a summary; a run that gave no figures is
    recorded, not raised."""
    generator = locust_generator(workers)
    return locust_summary([locust_once(setup, url, fresh, workdir, workers)], generator)


def calibrate(setup: Setup, workdir: Path) -> dict[str, Any]:
    """The generator against one pod, keep-alive (see the module docstring), CALIBRATION_ROUNDS
    rounds, each running the harness's locustfile at every worker count of LOCUST_SCALING and
    the bare locustfile beside the harness's run with LOCUST_WORKERS workers (after it, before
    it every other round). Ratios are medians of each round's ratio (`paired_ratio`)."""
    counts = sorted({*LOCUST_SCALING, LOCUST_WORKERS})
    bare = f"bare_pod_keepalive_w{LOCUST_WORKERS}"
    plan = [(f"locust_pod_keepalive_w{w}", w, False) for w in counts]
    at = counts.index(LOCUST_WORKERS) + 1
    plan[at:at] = [(bare, LOCUST_WORKERS, True)]
    rounds: dict[str, list[LoadResult | str]] = {name: [] for name, _, _ in plan}
    swapped = list(plan)
    swapped[at - 1 : at + 1] = reversed(plan[at - 1 : at + 1])
    for number in range(CALIBRATION_ROUNDS):
        # the harness's and the bare run side by side, their order swapped every other round:
        # a machine getting busier or quieter favours neither
        for name, workers, is_bare in swapped if number % 2 else plan:
            where = workdir / f"{name}-{number}"
            rounds[name].append(locust_once(setup, setup.pod_url, False, where, workers, is_bare))
    runs = {name: locust_summary(rounds[name], locust_generator(w, b)) for name, w, b in plan}
    for figures in runs.values():
        figures.pop("backends", None)

    def ok(name: str) -> list[LoadResult | None]:
        return [r if isinstance(r, LoadResult) else None for r in rounds[name]]

    harness = f"locust_pod_keepalive_w{LOCUST_WORKERS}"
    over_bare = paired_ratio(ok(harness), ok(bare))
    runs[harness] = ratio_to(runs[harness], runs[bare], bare, ("script",), over_bare)
    one = "locust_pod_keepalive_w1"
    x_one = {w: paired_ratio(ok(f"locust_pod_keepalive_w{w}"), ok(one)) if one in runs else None
             for w in LOCUST_SCALING}  # fmt: skip
    for workers in LOCUST_SCALING:
        name = f"locust_pod_keepalive_w{workers}"
        if workers > 1 and workers != LOCUST_WORKERS and one in runs:
            runs[name] = ratio_to(runs[name], runs[one], one, ("workers",), x_one[workers])
    rates = {w: runs[f"locust_pod_keepalive_w{w}"].get("requests_per_s") for w in LOCUST_SCALING}
    return {
        "proxy": setup.proxy,
        "target": "one pod directly, keep-alive",
        "workers": LOCUST_WORKERS,
        "cpus": CPUS,
        "rounds": CALIBRATION_ROUNDS,
        "runs": runs,
        "harness_over_bare": over_bare,
        "scaling": scaling(rates, x_one),
    }


def measure(proxy: str, workdir: Path, calibrating: bool = False) -> dict[str, Any]:
    """Every run for one proxy (see the module docstring), keyed by run name, and the
    generator's calibration when `calibrating`. Each VIP run's ceiling is the pod run of the
    same tool, settings and connection mode; the pod runs are ceilings, with no ratio."""
    started = time.monotonic()
    calibration = None
    with service_with_pods(proxy) as setup:
        runs: dict[str, dict[str, Any]] = {}
        for mode, fresh in (("keepalive", False), ("fresh", True)):
            wrk_pod, wrk_vip = wrk_pair(setup, mode, fresh)
            locust_pod = locust_run(
                setup, setup.pod_url, fresh, workdir / f"pod-{mode}", LOCUST_WORKERS
            )
            locust_vip = locust_run(
                setup, setup.vip_url, fresh, workdir / f"vip-{mode}", LOCUST_WORKERS
            )
            runs[f"wrk_pod_{mode}"] = wrk_pod
            runs[f"wrk_vip_{mode}"] = wrk_vip
            runs[f"locust_pod_{mode}"] = locust_pod
            runs[f"locust_vip_{mode}"] = ratio_to(locust_vip, locust_pod, f"locust_pod_{mode}")
        for name, figures in runs.items():
            backends = figures.pop("backends", {})
            if "_vip_" in name and backends:
                figures["distribution"] = distribution(backends, setup.pods)
        if calibrating:
            calibration = calibrate(setup, workdir / "calibration")
    seconds = round(time.monotonic() - started, 1)
    result = {"proxy": proxy, "pods": PODS, "seconds": seconds, "runs": runs}
    return {**result, "calibration": calibration} if calibration else result


def measure_or_record(proxy: str, workdir: Path, calibrating: bool) -> dict[str, Any]:
    """`measure`, or the one-line reason this proxy gave no figures (the others still run)."""
    try:
        return measure(proxy, workdir, calibrating)
    except (HarnessError, generators.LoadRunFailed, OSError) as error:
        return {"proxy": proxy, "failed": f"{type(error).__name__}: {error}".splitlines()[0]}


def problems(result: dict[str, Any]) -> list[str]:
    """What must hold for a proxy with 10 ready pods, as one line per breach."""
    if "failed" in result:
        return [f"{result['proxy']}: {result['failed']}"]
    found = []
    for name, figures in result["runs"].items():
        where = f"{result['proxy']} {name}"
        if "failed" in figures:
            found.append(f"{where}: {figures['failed']}")
            continue
        if not figures["requests"] > 0:
            found.append(f"{where}: no request answered")
        if figures["errors"]:
            found.append(f"{where}: {figures['errors']} errors")
    fresh = result["runs"]["locust_vip_fresh"].get("distribution")
    if fresh is not None and fresh["pods_reached"] != fresh["pods"]:
        found.append(f"{result['proxy']}: fresh connections reached {fresh['pods_reached']} pods")
    return found


def test_throughput_against_the_generator_ceiling(tmp_path: Path, output_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    missing = [tool for tool in ("wrk", "locust") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (apt-get install wrk; pip install locust)")
    started, started_at = time.monotonic(), datetime.datetime.now(datetime.UTC)
    results: list[dict[str, Any]] = []
    calibration = None
    for proxy in PROXIES:  # the first proxy whose cluster opens calibrates the generator
        results.append(measure_or_record(proxy, tmp_path / proxy, calibration is None))
        calibration = calibration or results[-1].pop("calibration", None)
    report = {
        "benchmark": "requests/s through a Service VIP vs the load generator's ceiling",
        "started_at": iso_time(started_at),
        "host": machine(),
        "settings": {"pods": PODS, "connections": CONNECTIONS, "wrk_threads": WRK_THREADS,
                     "wrk_seconds": WRK_SECONDS, "wrk_rounds": WRK_ROUNDS,
                     "locust_seconds": LOCUST_SECONDS, "locust_workers": LOCUST_WORKERS,
                     "locust_scaling": LOCUST_SCALING, "locust_user": LOCUST_USER,
                     "latency_unit": "us", "client": CLIENT},
        "duration_s": round(time.monotonic() - started, 1),
        "results": results,
        "calibration": calibration,
    }  # fmt: skip
    print(f"wrote {write_figures(output_dir, 'throughput.json', report, started_at)}")
    for result in results:
        print(json.dumps({"proxy": result["proxy"], **{
            name: (f.get("requests_per_s"), f.get("ratio_to_ceiling"))
            for name, f in result.get("runs", {}).items()}}))  # fmt: skip
    if calibration is not None:
        print(json.dumps({"calibration": {k: calibration[k] for k in ("harness_over_bare",
                                                                      "scaling")}}))  # fmt: skip
    breaches = [line for result in results for line in problems(result)]
    breaches += structure_problems(report)
    assert breaches == [], breaches
