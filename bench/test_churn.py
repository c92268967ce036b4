"""Benchmark (not a unit test): failed requests while the cluster churns under load.

For each proxy in HARNESS_BENCH_PROXIES (default: all five; quick: iptables) this opens a local
target with one Service `web` over PODS ready pods and, from inside client-1's namespace (never
the root namespace), sends fresh connections to its VIP at a steady rate (bench/churn_load.py:
SENDERS senders sharing it, bounded in count and time, stopping by themselves) while it drives
churn through the target's events, a pause of PAUSE_MS between changes so that the load runs
in every state:

- steady: no change (the baseline);
- scale up: `Scale` to PODS + SURGE; scale down: `Scale` back to PODS (the newest pods deleted
  gracefully, terminating but serving), then a `Wait` past their grace period (gone);
- relabel out: `SetLabel` moves one pod out of the selector; relabel in: back into it;
- restart proxy: `RestartProxy` (stopped, started anew, everything programmed again);
- rolling update: for each old pod, a new pod created not ready, made ready, then the old pod
  deleted with a grace period (terminating but serving), then a `Wait` past the grace (gone);
- settle: no change.

Every failed request is classified by cause (refused, reset, timeout, wrong pod: answered by a
pod not usable in any state the target was in while it ran, from the model state the target
holds; `harness.reporting.churn`) and by the phase that was running. The promise is zero failed
requests while usable endpoints exist; whether each proxy kept it, and the failures that broke
it, go into churn.json in the run directory (bench/conftest.py) with total requests and
requests/s over time. No rate is asserted, nor the promise (it is a figure for the report):
asserted are the figures' structure and that the load ran (requests answered in every proxy).

Bounds: the load stops after the churn, or at LOAD_LIMIT_S, whichever is first; each request
within TIMEOUT_S. The target is closed, namespaces and all, even on failure. About 5 s a proxy
in the quick profile, 25 s in the full one.

Run: `pytest bench/test_churn.py -s -p no:kmock`; knobs (bench/sizes.py; full, quick):
HARNESS_BENCH_PROXIES (all five; iptables), HARNESS_BENCH_CHURN_PODS (10; 4),
HARNESS_BENCH_CHURN_SURGE (3; 2), HARNESS_BENCH_CHURN_RATE requests/s (200; 100),
HARNESS_BENCH_CHURN_PAUSE_MS (400; 150), HARNESS_BENCH_CHURN_SENDERS (4; 4: senders sharing the
rate, so that a request waiting for its timeout holds up one of them only).
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from churn_load import SteadyLoad
from sizes import names, size

from harness.errors import HarnessError
from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    Event,
    RestartProxy,
    Scale,
    SetLabel,
    SetReady,
    Wait,
)
from harness.model.endpoints import expect
from harness.model.objects import labels_of
from harness.model.state import ClusterState
from harness.registry import TargetOptions
from harness.reporting.churn import CAUSES, Span, churn_figures
from harness.reporting.runs import iso_time, write_figures
from harness.targets.local import LocalTarget

pytestmark = pytest.mark.netns

PROXIES = names("PROXIES", full="iptables,nftables,userspace,nginx,haproxy", quick="iptables")
PODS = size("CHURN_PODS", full=10, quick=4)
SURGE = size("CHURN_SURGE", full=3, quick=2)
RATE = size("CHURN_RATE", full=200, quick=100)
PAUSE_MS = size("CHURN_PAUSE_MS", full=400, quick=150)
SENDERS = size("CHURN_SENDERS", full=4, quick=4)
GRACE_S = 30.0  # model time: the pods stay terminating until a Wait passes it
TIMEOUT_S = 1.0
CLIENT = "client-1"
SERVICE, PORT = "web", "http"
SCHEMA = "harness.churn/v1"
GENERATOR = "harness client agents: fresh connections at a steady rate, one at a time per sender"

Step = tuple[str, Event | None]


def churn_plan(pods: int, surge: int, grace_s: float) -> list[Step]:
    """The churn, in order: (phase, event), None for a pause with no change."""
    steps: list[Step] = [("steady", None)]
    steps += [("scale up", Scale(SERVICE, pods + surge)), ("scale down", Scale(SERVICE, pods)),
              ("scale down", Wait(grace_s + 1))]  # fmt: skip
    steps += [("relabel out", SetLabel(f"{SERVICE}-0", "app", "elsewhere")),
              ("relabel in", SetLabel(f"{SERVICE}-0", "app", SERVICE))]  # fmt: skip
    steps.append(("restart proxy", RestartProxy()))
    for index in range(pods):
        new = f"{SERVICE}-v2-{index}"
        steps += [
            ("rolling update", CreatePod(new, labels_of({"app": SERVICE}), ready=False)),
            ("rolling update", SetReady(new, True)),
            ("rolling update", DeletePod(f"{SERVICE}-{index}", grace_s)),
            ("rolling update", Wait(grace_s + 1)),
        ]
    steps.append(("settle", None))
    return steps


PLAN = churn_plan(PODS, SURGE, GRACE_S)
PHASES = list(dict.fromkeys(phase for phase, _ in PLAN))
LOAD_LIMIT_S = 60.0 + 4 * len(PLAN) * PAUSE_MS / 1000
"""The load's own bound: far past the churn's pauses, in case applying a change hangs."""


def usable(state: ClusterState) -> frozenset[tuple[str, str]]:
    """The (pod, uid) pairs a new connection to the Service may reach in `state`."""
    return frozenset((b.pod, b.uid) for b in expect(state, SERVICE, PORT).usable)


def drive(target: LocalTarget, steps: list[Step], pause_s: float) -> Iterator[Span]:
    """Apply each step's event (None: no change) and pause; yields the state each made."""
    for phase, event in steps:
        since = time.monotonic()
        if event is not None:
            target.apply(event)
        yield Span(phase, since, time.monotonic(), usable(target.state))
        time.sleep(pause_s)


def measure(proxy: str) -> dict[str, Any]:
    """One proxy under churn (see the module docstring): its figures."""
    target = LocalTarget.from_spec(proxy, TargetOptions())
    target.open()
    try:
        target.apply_many([CreateService(SERVICE, labels_of({"app": SERVICE})),
                           Scale(SERVICE, PODS)])  # fmt: skip
        service = target.state.services[SERVICE]
        assert target.cluster is not None
        netns = target.cluster.clients[CLIENT].netns
        now = time.monotonic()
        spans = [Span("steady", now, now, usable(target.state))]
        address, port = service.cluster_ip, service.ports[0].port
        bounds = {"max_seconds": LOAD_LIMIT_S, "timeout_s": TIMEOUT_S, "workers": SENDERS}
        with SteadyLoad(netns, address, port, rate_per_s=RATE, **bounds) as load:
            spans += drive(target, PLAN, PAUSE_MS / 1000)
        if load.problem is not None:
            raise HarnessError(f"the load stopped: {load.problem}")
        figures = churn_figures(load.requests, spans, load.began_s)
    finally:
        target.close()
    return {"proxy": proxy, **figures}


def measure_or_record(proxy: str) -> dict[str, Any]:
    """`measure`, or the one-line reason this proxy gave no figures (the others still run)."""
    try:
        return measure(proxy)
    except (HarnessError, OSError) as error:
        return {"proxy": proxy, "failed": f"{type(error).__name__}: {error}".splitlines()[0]}


def problems(result: dict[str, Any]) -> list[str]:
    """What must hold whatever the proxy does under churn, as one line per breach: figures of
    the right shape, and a load that ran (requests answered, in every phase)."""
    if "failed" in result:
        return [f"{result['proxy']}: {result['failed']}"]
    where = result["proxy"]
    found = []
    if not result["answered"] > 0:
        found.append(f"{where}: no request answered")
    if list(result["failures"]) != list(CAUSES):
        found.append(f"{where}: failure causes {list(result['failures'])}")
    phases = [phase["phase"] for phase in result["phases"]]
    if phases != PHASES:
        found.append(f"{where}: phases {phases}, planned {PHASES}")
    if sum(phase["requests"] for phase in result["phases"]) != result["requests"]:
        found.append(f"{where}: requests per phase do not add up to {result['requests']}")
    if result["promise_kept"] != (result["breaking_failures"] == 0):
        found.append(f"{where}: promise_kept disagrees with the failures that broke it")
    return found


def test_failed_requests_under_churn(output_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    started, started_at = time.monotonic(), datetime.datetime.now(datetime.UTC)
    results = [measure_or_record(proxy) for proxy in PROXIES]
    report = {
        "schema": SCHEMA,
        "benchmark": "failed requests through a Service VIP while the cluster churns under load",
        "started_at": iso_time(started_at),
        "settings": {"pods": PODS, "surge": SURGE, "rate_per_s": RATE, "senders": SENDERS,
                     "pause_ms": PAUSE_MS,
                     "grace_s": GRACE_S, "timeout_s": TIMEOUT_S, "client": CLIENT,
                     "generator": GENERATOR, "phases": PHASES, "changes": len(PLAN)},
        "duration_s": round(time.monotonic() - started, 1),
        "results": results,
    }  # fmt: skip
    print(f"wrote {write_figures(output_dir, 'churn.json', report, started_at)}")
    for result in results:
        shown = ("proxy", "failed", "requests", "requests_per_s", "failures", "promise_kept")
        print(json.dumps({key: result.get(key) for key in shown}))
    breaches = [line for result in results for line in problems(result)]
    assert breaches == [], breaches
