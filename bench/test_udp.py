"""Benchmark (not a unit test): UDP through each proxy's Service VIP (issue 12, "Figures").

For each proxy in HARNESS_BENCH_PROXIES (default: all five, in both profiles) this asks a local
target which conformance features its proxy declares (`target_features`, as a conformance run
does: from the proxy class, without starting it, or from an external proxy's hello once open).
A proxy that does not declare `udp` (userspace, nginx and haproxy relay TCP only) is a row "not
supported", never a number. For the others it opens the target, makes one UDP Service `web` over
PODS ready pods and, from inside client-1's namespace (never from the root namespace), measures:

- *request/response throughput*: the harness's UDP generator (bench/udp_load.py: one thread,
  FLOWS flows with one request in flight each, a closed loop; wrk and locust speak HTTP over
  TCP only) to one pod directly (the ceiling: same generator, same settings, no proxy) and
  through the VIP, rounds interleaved (pod, VIP, pod, VIP, ...) so that drift on this shared
  machine hits both alike: requests/s and latency p50/p90/p99 in µs, medians over ROUNDS rounds
  of SECONDS each, and the VIP's ratio to the ceiling (the median of each round's ratio,
  `load_results.paired_ratio`: like with like, `ratio_to`);
- *flow-move time*: one flow with a fixed 5-tuple (source port 12345, as upstream's conntrack
  e2e `-p 12345`) sends a datagram every INTERVAL_MS; its backend is deleted (`DeletePod`,
  grace 0: gone at once); the time from the event being handed to the target until the first
  answer from another backend. The proxy must delete the flow's conntrack entry (kube-proxy
  does, `pkg/proxy/conntrack/cleanup.go`), or the flow, never idle for 30 s, stays on the
  deleted pod's address. MOVES times (the deleted pod replaced by `Scale` between moves, so
  PODS endpoints remain); p50/p99 (nearest rank: with fewer than 100 moves the p99 is the
  largest) and each move's time spent in `apply` (model, pods, the proxy's sync). A flow that
  did not move within MOVE_LIMIT_S is counted as not moved, its time unknown.

Everything goes to udp.json in the run directory (bench/conftest.py). No rate, ratio or time is
asserted (the machine is shared; timings are figures for the report). Asserted, because they
must hold: every supported proxy's runs answered, the fixed flow moved every time (the harness's
iptables and nftables proxies clear UDP conntrack as kube-proxy does), and the figures'
structure (bench/udp_rules.py).

Bounds: each generator run stops at SECONDS or after SECONDS x MAX_RATE requests, each request
within TIMEOUT_MS; the fixed flow sends for at most its own limit; each wait for a move at most
MOVE_LIMIT_S. The target is closed, namespaces and all, even on failure. About 10 s a supported
proxy in the quick profile, 30 s in the full one.

Run: `pytest bench/test_udp.py -s -p no:kmock`; knobs (bench/sizes.py; full, quick):
HARNESS_BENCH_PROXIES (all five; all five), HARNESS_BENCH_UDP_PODS (4; 3),
HARNESS_BENCH_UDP_FLOWS (8; 4), HARNESS_BENCH_UDP_SECONDS (2; 1), HARNESS_BENCH_UDP_ROUNDS (3; 1),
HARNESS_BENCH_UDP_MOVES (20; 3), HARNESS_BENCH_UDP_INTERVAL_MS (5; 5),
HARNESS_BENCH_UDP_MOVE_LIMIT_S (60: the e2e's poll window; 10).
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from load_results import Generator, LoadResult, paired_ratio, ratio_to, summarise
from sizes import names, size
from udp_load import TOOL, FixedFlow, percentile, request_response
from udp_rules import NOT_SUPPORTED, udp_problems

from harness.errors import HarnessError
from harness.events import UDP_PORT_NAME, CreateService, DeletePod, Scale
from harness.model.objects import Protocol, labels_of
from harness.registry import TargetOptions
from harness.reporting.runs import iso_time, write_figures
from harness.reporting.sources import one_line
from harness.targets.base import target_features
from harness.targets.local import LocalTarget

pytestmark = pytest.mark.netns

ALL_PROXIES = "iptables,nftables,userspace,nginx,haproxy"
PROXIES = names("PROXIES", full=ALL_PROXIES, quick=ALL_PROXIES)
PODS = size("UDP_PODS", full=4, quick=3)
FLOWS = size("UDP_FLOWS", full=8, quick=4)
SECONDS = size("UDP_SECONDS", full=2, quick=1)
ROUNDS = size("UDP_ROUNDS", full=3, quick=1)
MOVES = size("UDP_MOVES", full=20, quick=3)
INTERVAL_MS = size("UDP_INTERVAL_MS", full=5, quick=5)
MOVE_LIMIT_S = size("UDP_MOVE_LIMIT_S", full=60, quick=10)
TIMEOUT_MS = 200
MAX_RATE = 200_000
"""Requests/s no run here comes near; with SECONDS it bounds a run's requests."""
CLIENT = "client-1"
SERVICE = "web"
SCHEMA = "harness.udp/v1"
GENERATOR = Generator(TOOL, 1, FLOWS)
SETTINGS = {"tool": TOOL, "threads": 1, "flows": FLOWS, "seconds": SECONDS,
            "timeout_ms": TIMEOUT_MS}  # fmt: skip
"""What made a run, as its figures name it (`generator`): a ratio compares runs of equal ones."""
GENERATOR_TEXT = (
    "harness UDP request/response loop (bench/udp_load.py): one thread, epoll over connected"
    " sockets, one request in flight per flow, from a client namespace"
)


def rounds(netns: str, pod: tuple[str, int], vip: tuple[str, int]) -> dict[str, Any]:
    """The ceiling and the VIP, ROUNDS interleaved rounds each: their summaries and the ratio."""
    run = functools.partial(
        request_response,
        netns,
        flows=FLOWS,
        seconds=SECONDS,
        max_requests=SECONDS * MAX_RATE,
        timeout_s=TIMEOUT_MS / 1000,
    )
    ceilings: list[LoadResult] = []
    vips: list[LoadResult] = []
    for _ in range(ROUNDS):
        ceilings.append(run(*pod))
        vips.append(run(*vip))
    ceiling = {**summarise(ceilings, GENERATOR), "generator": SETTINGS}
    through = {**summarise(vips, GENERATOR), "generator": SETTINGS}
    return {
        "pod": ceiling,
        "vip": ratio_to(through, ceiling, "pod", ratio=paired_ratio(vips, ceilings)),
    }


def move_once(target: LocalTarget, flow: FixedFlow) -> dict[str, Any]:
    """Delete the fixed flow's backend; how long until another answered (ms; None: not within
    MOVE_LIMIT_S), and how long `apply` took. Then bring the pods back to PODS."""
    answered = flow.wait_for_other(0, "", MOVE_LIMIT_S)  # any answer: no pod is named ""
    current = flow.last_pod()
    if flow.problem is not None:
        raise HarnessError(f"the fixed UDP flow stopped: {flow.problem}")
    if answered is None or current is None:
        raise HarnessError(f"the fixed UDP flow got no answer within {MOVE_LIMIT_S} s")
    if current not in target.state.pods:
        raise HarnessError(f"the fixed UDP flow is still answered by deleted pod {current}")
    start, began = len(flow.answers), time.monotonic()
    target.apply(DeletePod(current, grace_s=0))
    applied = time.monotonic()
    moved = flow.wait_for_other(start, current, MOVE_LIMIT_S - (applied - began))
    target.apply(Scale(SERVICE, PODS))
    return {
        "from": current,
        "to": moved.pod if moved else None,
        "move_ms": round((moved.at_s - began) * 1000, 1) if moved else None,
        "apply_ms": round((applied - began) * 1000, 1),
    }


def flow_moves(target: LocalTarget, netns: str, vip: tuple[str, int]) -> dict[str, Any]:
    """MOVES moves of one fixed-5-tuple flow (module docstring), with p50/p99."""
    limit_s = MOVES * (MOVE_LIMIT_S + 10) + 10
    with FixedFlow(netns, *vip, interval_s=INTERVAL_MS / 1000, max_seconds=limit_s) as flow:
        moves = [move_once(target, flow) for _ in range(MOVES)]
    if flow.problem is not None:
        raise HarnessError(f"the fixed UDP flow stopped: {flow.problem}")
    times = [m["move_ms"] for m in moves if m["move_ms"] is not None]
    applies = [m["apply_ms"] for m in moves]
    return {
        "moves": len(moves),
        "moved": len(times),
        "not_moved": len(moves) - len(times),
        "move_p50_ms": percentile(times, 50),
        "move_p99_ms": percentile(times, 99),
        "apply_p50_ms": percentile(applies, 50),
        "samples": moves,
    }


def unsupported(target: LocalTarget) -> dict[str, Any] | None:
    """{"not_supported": reason} when `target`'s proxy does not declare `udp`, else None."""
    features, origin = target_features(target)
    if "udp" in features:
        return None
    return {NOT_SUPPORTED: f"does not declare the udp feature ({origin})"}


def figures(target: LocalTarget) -> dict[str, Any]:
    """The open `target`'s figures: "not supported" unless its proxy declares `udp` (an
    external proxy declares in its hello, once open), else the throughput rounds and the flow
    moves."""
    refused = unsupported(target)
    if refused is not None:
        return refused
    selector = labels_of({"app": SERVICE})
    target.apply_many([CreateService(SERVICE, selector, target_port=UDP_PORT_NAME,
                                     protocol=Protocol.UDP), Scale(SERVICE, PODS)])  # fmt: skip
    service = target.state.services[SERVICE]
    first = min(target.state.pods.values(), key=lambda pod: pod.name)
    assert target.cluster is not None and first.ip is not None
    netns = target.cluster.clients[CLIENT].netns
    pod_port = next(p.port for p in first.ports if p.name == UDP_PORT_NAME)
    vip = (service.cluster_ip, service.ports[0].port)
    throughput = rounds(netns, (first.ip, pod_port), vip)
    return {**throughput, "flow_move": flow_moves(target, netns, vip)}


def measure(proxy: str) -> dict[str, Any]:
    """One proxy's result: "not supported" when its class declares no `udp` (nothing is
    started), else its `figures`, or the one-line reason it gave none (`failed`; the other
    proxies still run). Its target is closed, namespaces and all, whatever happened."""
    target = LocalTarget.from_spec(proxy, TargetOptions())
    declared_by_class = not hasattr(target.proxy, "declared_features")  # not from a hello
    try:
        refused = unsupported(target) if declared_by_class else None
        if refused is not None:  # known without starting the proxy
            return {"proxy": proxy, **refused}
        target.open()
        return {"proxy": proxy, **figures(target)}
    except (HarnessError, OSError) as error:
        return {"proxy": proxy, "failed": one_line(error)}
    finally:
        target.close()


def test_udp_through_the_vip(output_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    started, started_at = time.monotonic(), datetime.datetime.now(datetime.UTC)
    results = [measure(proxy) for proxy in PROXIES]
    report = {
        "schema": SCHEMA,
        "benchmark": "UDP request/response through the VIP against direct-to-pod, and the time"
        " a fixed-5-tuple flow takes to move after its backend is deleted",
        "started_at": iso_time(started_at),
        "settings": {"generator": GENERATOR_TEXT, "flows": FLOWS, "seconds": SECONDS,
                     "rounds": ROUNDS, "timeout_ms": TIMEOUT_MS, "pods": PODS, "client": CLIENT,
                     "moves": MOVES, "interval_ms": INTERVAL_MS, "move_limit_s": MOVE_LIMIT_S,
                     "source_port": FixedFlow.SOURCE_PORT},
        "duration_s": round(time.monotonic() - started, 1),
        "results": results,
    }  # fmt: skip
    print(f"wrote {write_figures(output_dir, 'udp.json', report, started_at)}")
    for result in results:
        vip = result.get("vip") or {}
        move = result.get("flow_move") or {}
        shown = {"proxy": result["proxy"], "vip_rps": vip.get("requests_per_s"),
                 "ratio": vip.get("ratio_to_ceiling"), "move_p50_ms": move.get("move_p50_ms"),
                 "move_p99_ms": move.get("move_p99_ms"), "failed": result.get("failed"),
                 NOT_SUPPORTED: result.get(NOT_SUPPORTED)}  # fmt: skip
        print(json.dumps(shown))
    breaches = udp_problems(report)
    assert breaches == [], breaches
