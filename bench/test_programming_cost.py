"""Benchmark (not a unit test): programming cost at scale for the kernel-rule proxies (issue 13,
item 5; the kube-proxy nftables comparison of KEP-3866).

For each proxy (HARNESS_BENCH_PROGCOST_PROXIES, default iptables and nftables) and each size
(HARNESS_BENCH_PROGCOST_ENDPOINTS endpoints in HARNESS_BENCH_PROGCOST_SERVICES Services, read
side by side: full profile 10/10, 100/50, 1,000/500, 10,000/5,000; quick 10/10, 100/50), a local
target is opened whose proxy holds, besides a real probe Service, that many endpoints in that
many Services. Those bulk endpoints are not pods (10,000 namespaces is too many): they are
slices handed to the proxy through its contract (bench/synthetic_cluster.py), with addresses no
pod holds, so the rules are as large as such a cluster's while traffic only ever goes to the
probe Service, whose two endpoints are real pods (probe-a and probe-b). Measured per size:

- change to serve: probe-b turns ready and probe-a unready in one change (the probe's one usable
  endpoint moves to a new pod), from the start of the change to a fresh connection through the
  VIP answering from the new pod; `change_sync_ms` is the proxy's own sync within it,
  `change_apply_ms` its run of the rule command (the rest of a sync is choosing and rendering
  the rules and clearing stale conntrack entries), and `change_programmed_ms` the sync up to
  the end of its rule command (the data plane serves the change from then on; the conntrack
  cleanup that follows walks the kernel's whole conntrack hash table). Changes go there and back,
  `PROGCOST_ROUNDS` times each way;
- bare rule command: each pair of changes' transactions, as the proxy wrote them, applied again in
  the node namespace with the plain kernel command (`iptables-restore --noflush`, `nft -f -`, run
  as the proxy runs it); the rules cycle back, so every replay applies cleanly;
- floor: the bare command applying the smallest transaction that commits and changes nothing
  a Service owns (`floor_transaction`), `floor_bare_ms`, beside how many chains the proxy
  programmed (`chains`): `nft -f` (1.0.6) dumps every chain of the namespace into its cache
  before any transaction, so a one-endpoint change costs at least this floor, which grows with
  the chain count (kube-proxy's layout: one chain per Service port and per endpoint); nft 1.1.3
  fetches no chain for it, but still every set of the table (one anonymous set per Service
  chain's `numgen` map). Beyond any client, a commit that adds a jump or goto (every endpoint
  change of this layout does) has the kernel validate every chain reachable from the base
  chains (`nft_table_validate`): at 10,000 endpoints that commit alone took 8 to 10 ms here,
  against 0.1 ms at 10. So nftables sizes also record `floor_goto_bare_ms`, the same smallest
  transaction with a goto (`goto_floor_transaction`): its excess over the floor is the kernel's
  validation;
- the rule tool: each proxy's result names the version of the tool it ran (`tool`), and with
  HARNESS_BENCH_PROGCOST_NFT (directories, each holding an `nft`: bench/debian_nft.py fetches
  Debian 13's) the nftables proxy is measured once more per directory, that directory first on
  PATH for the proxy and the bare command alike (`variant`: `nft v1.1.3`), so one run shows
  which share of the growth is the `nft` binary's;
- full sync: a `RestartProxy` on a node whose conntrack table was flushed first: the fresh
  proxy instance adopts the rules its predecessor left (they keep serving) and its first sync
  programs everything anew in one transaction (`full_sync_ms`, its rule command
  `full_apply_ms`, up to the end of that command `full_programmed_ms`), then a fresh
  connection is answered (`restart_to_serve_ms`); `full_bare_ms` applies that transaction
  again with the bare command in the node namespace, whose rules are the same before and
  after it (the state the proxy's sync started from).
  `PROGCOST_FULL_ROUNDS` restarts. One restart more keeps the
  connections some probe requests left (`flows_tracked`) and records its sync
  (`flows_sync_ms`) or why it failed (`flows_sync_failed`): a fresh instance clears the
  untranslated entries of every Service port it programs, one conntrack table walk each
  (`harness.proxies.rules.conntrack`), which at 5,000 Services exceeded the 30 s the proxy
  gives the command; the flush keeps that out of the programming figures;
- first-packet latency: the connect time (SYN to SYN-ACK) of `PROGCOST_CONNECTIONS` fresh
  connections from client-1 to the probe's VIP, every packet through the proxy's rules (for
  iptables the probe's rule is the last of KUBE-SERVICES: bench/synthetic_cluster.py).

Medians, with their counts, go to programming_cost.json in the run directory (bench/conftest.py);
the report (`harness.reporting.programming_cost`) computes the issue's ratios from them in one
run. Timings are never asserted (they measure the machine's load too). Asserted, because it is
correctness: every change and restart is served by the right pod through the VIP within a bounded
wait, a change rewrites the probe Service's rules only, whatever the size, and the file keeps
the structure bench/cost_rules.py states.

Run: `HARNESS_BENCH_PROFILE=quick pytest bench/test_programming_cost.py -s -p no:kmock` (quick:
about 10 s; full: several minutes, most of it the 10,000-endpoint size).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cost_rules import structure_problems
from sizes import (
    PROFILE,
    PROGCOST_CONNECTIONS,
    PROGCOST_ENDPOINTS,
    PROGCOST_FULL_ROUNDS,
    PROGCOST_NFT,
    PROGCOST_PROXIES,
    PROGCOST_ROUNDS,
    PROGCOST_SERVICES,
)
from synthetic_cluster import bulk, bulk_controller
from test_rule_sync import BARE_COMMANDS, timed_bare

from harness.errors import EnvironmentProblem
from harness.events import CreatePod, CreateService, Event, RestartProxy, SetReady
from harness.local.names import netns_path
from harness.local.netns import flush_conntrack, in_thread, setns
from harness.model.objects import labels_of
from harness.proxies.iptables import IptablesProxy
from harness.proxies.nftables import NO_ENDPOINTS, REJECT_CHAIN, SERVICE_IPS, NftablesProxy
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.reporting.runs import write_figures
from harness.targets.local import LocalTarget
from harness.traffic import TrafficRequest
from harness.versions import PROXY_TOOLS, tool_version

pytestmark = pytest.mark.netns

PROBE = "probe"
PROBE_PODS = ("probe-a", "probe-b")
PROBE_EVENTS: tuple[Event, ...] = (
    CreateService(PROBE, labels_of({"app": PROBE})),
    CreatePod(PROBE_PODS[0], labels_of({"app": PROBE}), ready=True),
    CreatePod(PROBE_PODS[1], labels_of({"app": PROBE}), ready=False),
)
SERVE_WAIT_S = 10.0
"""How long a change may take to be served before the benchmark fails (bounded polling)."""
SERVE_POLLS = 500
CONNECT_TIMEOUT_S = 2.0
FLOW_CONNECTIONS = 20
"""Fresh probe requests made before the restart with tracked connections."""
CHANGE_LINES_AT_MOST = 24
"""A change of the probe's one usable endpoint rewrites its Service chain and two endpoint
chains, with framing: never more, whatever the cluster's size."""
GOALS = {
    "proxy_over_bare_at_most": 1.5,
    "nftables_change_growth_at_most": 2.0,
    "nftables_first_packet_growth_at_most": 1.5,
}


class SyncTimer(KernelRuleProxy):
    """A kernel-rule proxy that remembers how long its last `sync()` took, how much of it
    applying the transaction took (the proxy's own run of the rule command; the rest is
    choosing and rendering the rules and clearing stale conntrack entries), and how long from
    the sync's start until its rule command returned (`last_programmed_ms`: new connections
    follow the new rules from then on; the conntrack housekeeping comes after, as
    kube-proxy's `CleanStaleEntries` ends its `syncProxyRules`). Nothing else differs.
    Abstract: combined with a real proxy class below."""

    last_sync_ms = 0.0
    last_apply_ms = 0.0
    last_programmed_ms = 0.0
    _sync_started = 0.0

    def sync(self) -> None:
        self.last_apply_ms = self.last_programmed_ms = 0.0
        self._sync_started = started = time.perf_counter()
        super().sync()
        self.last_sync_ms = (time.perf_counter() - started) * 1000

    def apply(self, payload: str) -> None:
        started = time.perf_counter()
        super().apply(payload)
        ended = time.perf_counter()
        self.last_apply_ms += (ended - started) * 1000
        self.last_programmed_ms = (ended - self._sync_started) * 1000


class TimedIptables(SyncTimer, IptablesProxy):
    """The iptables proxy with its sync timed."""


class TimedNftables(SyncTimer, NftablesProxy):
    """The nftables proxy with its sync timed."""


TIMED: dict[str, type[SyncTimer]] = {"iptables": TimedIptables, "nftables": TimedNftables}


def proxy_of(target: LocalTarget) -> SyncTimer:
    proxy = target.proxy
    assert isinstance(proxy, SyncTimer), proxy
    return proxy


def wait_served(target: LocalTarget, pod: str, started: float) -> float:
    """Milliseconds from `started` (perf_counter) until a fresh connection through the probe's
    VIP is answered by `pod`; AssertionError after `SERVE_POLLS` connections or `SERVE_WAIT_S`."""
    for _ in range(SERVE_POLLS):
        sample = target.send(TrafficRequest(PROBE, count=1, timeout_s=1.0))
        if any(backend.pod == pod for backend in sample.hits()):
            return (time.perf_counter() - started) * 1000
        if time.perf_counter() - started > SERVE_WAIT_S:
            break
    raise AssertionError(f"{pod} never answered through the VIP: last {sample.outcomes}")


def connect_times_us(netns: str, address: str, port: int, count: int) -> list[float]:
    """The connect time (SYN to SYN-ACK) of `count` fresh TCP connections to `address:port`
    from namespace `netns`, in microseconds; each connection is closed at once."""

    def work() -> list[float]:
        setns(netns_path(netns))
        times = []
        for _ in range(count):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(CONNECT_TIMEOUT_S)
                started = time.perf_counter()
                sock.connect((address, port))
                times.append((time.perf_counter() - started) * 1e6)
        return times

    return in_thread(work, timeout_s=count * CONNECT_TIMEOUT_S + 5)


def median(values: list[float], digits: int = 2) -> float:
    return round(statistics.median(values), digits)


def lines(payload: str) -> int:
    return payload.count("\n")


def measure_changes(target: LocalTarget, command: list[str]) -> dict[str, Any]:
    """`PROGCOST_ROUNDS` changes of the probe's usable endpoint there and back, each pair's
    transactions replayed with the bare command."""
    proxy, node = proxy_of(target), target.cluster.node_netns if target.cluster else ""
    current, other = PROBE_PODS
    synced, applied, programmed, served, bare, written = [], [], [], [], [], []
    for _ in range(PROGCOST_ROUNDS):
        payloads = []
        for _ in range(2):
            started = time.perf_counter()
            target.apply_many([SetReady(other, True), SetReady(current, False)])
            synced.append(proxy.last_sync_ms)
            applied.append(proxy.last_apply_ms)
            programmed.append(proxy.last_programmed_ms)
            payloads.append(proxy.last_payload)
            served.append(wait_served(target, other, started))
            current, other = other, current
        bare += [timed_bare(node, command, payload) for payload in payloads]
        written += [lines(payload) for payload in payloads]
    return {
        "change_sync_ms": median(synced),
        "change_apply_ms": median(applied),
        "change_programmed_ms": median(programmed),
        "change_to_serve_ms": median(served),
        "change_bare_ms": median(bare),
        "change_rounds": len(synced),
        "change_lines_max": max(written),
    }


FLOOR_KEY = "192.0.2.1 . tcp . 9"
"""A verdict-map key no packet ever uses (TEST-NET-1, RFC 5737): the floor transaction's."""
FLOOR_CHAIN = "KUBE-PROGCOST-FLOOR"


def floor_transaction(proxy: SyncTimer) -> str:
    """The smallest transaction that still commits, and leaves the rules as they were: one
    `service-ips` element added and removed (nftables), one empty chain made and deleted
    (iptables). It changes nothing any Service owns, so its cost is the rule command's own at
    this ruleset's size: for `nft -f` (1.0.6) that is dumping every chain of the namespace
    into its cache before any command, whatever the transaction touches."""
    if isinstance(proxy, NftablesProxy):
        table = f"ip {proxy.table} {SERVICE_IPS}"
        return (
            f"add element {table} {{ {FLOOR_KEY} : drop }}\n"
            f"delete element {table} {{ {FLOOR_KEY} }}\n"
        )
    return f"*filter\n:{FLOOR_CHAIN} - [0:0]\n-X {FLOOR_CHAIN}\nCOMMIT\n"


def goto_floor_transaction(proxy: NftablesProxy) -> str:
    """`floor_transaction` with a goto: one `no-endpoint-services` element going to the
    reject chain (as the proxy writes for a Service without endpoints), added and removed. A
    commit that adds a jump or goto has the kernel validate every chain reachable from the base
    chains (`nft_table_validate`, net/netfilter/nf_tables_api.c), and every endpoint change of
    kube-proxy's layout adds one (its Service chain's `numgen` map goes to the new endpoint's
    chain), so this is the least such a change costs; its excess over the plain floor is the
    kernel's validation."""
    table = f"ip {proxy.table} {NO_ENDPOINTS}"
    return (
        f"add element {table} {{ {FLOOR_KEY} : goto {REJECT_CHAIN} }}\n"
        f"delete element {table} {{ {FLOOR_KEY} }}\n"
    )


def measure_floor(target: LocalTarget, command: list[str]) -> dict[str, Any]:
    """The bare command's floor at this size (`floor_transaction`, `2 * PROGCOST_ROUNDS`
    times; for nftables also `goto_floor_transaction`) and how many chains the proxy has
    programmed: what a one-endpoint change cannot get under, however small it is."""
    proxy, node = proxy_of(target), target.cluster.node_netns if target.cluster else ""

    def floor(payload: str) -> float:
        return median([timed_bare(node, command, payload) for _ in range(2 * PROGCOST_ROUNDS)])

    chains = sum(len(rendering.chains) for rendering in proxy.rendered.values())
    figures = {"floor_bare_ms": floor(floor_transaction(proxy)), "chains": chains}
    if isinstance(proxy, NftablesProxy):
        figures["floor_goto_bare_ms"] = floor(goto_floor_transaction(proxy))
    return figures


def tracked_flows(netns: str) -> int:
    """How many connections the kernel tracks in namespace `netns` (`conntrack -C`)."""
    done = subprocess.run(["ip", "netns", "exec", netns, "conntrack", "-C"], check=True,
                          capture_output=True, text=True, timeout=10)  # fmt: skip
    return int(done.stdout.strip() or 0)


def measure_full(target: LocalTarget, command: list[str]) -> dict[str, Any]:
    """`PROGCOST_FULL_ROUNDS` proxy restarts on a node without tracked connections (flushed
    first: see `measure_restart_with_flows`), each first sync's transaction applied again with
    the bare command."""
    synced, applied, programmed, served, bare = [], [], [], [], []
    payload = ""
    node = target.cluster.node_netns if target.cluster else ""
    for _ in range(PROGCOST_FULL_ROUNDS):
        flush_conntrack(node)
        started = time.perf_counter()
        target.apply(RestartProxy())
        proxy = proxy_of(target)
        synced.append(proxy.last_sync_ms)
        applied.append(proxy.last_apply_ms)
        programmed.append(proxy.last_programmed_ms)
        payload = proxy.last_payload
        served.append(wait_served(target, PROBE_PODS[0], started))
        bare.append(timed_bare(node, command, payload))
    return {
        "full_sync_ms": median(synced),
        "full_apply_ms": median(applied),
        "full_programmed_ms": median(programmed),
        "restart_to_serve_ms": median(served),
        "full_bare_ms": median(bare),
        "full_rounds": len(synced),
        "full_lines": lines(payload),
    }


def measure_restart_with_flows(target: LocalTarget) -> dict[str, Any]:
    """One restart more, with the connections `FLOW_CONNECTIONS` fresh probe requests left in
    the node's conntrack table: a fresh proxy instance clears each newly programmed Service
    port's untranslated entries (`harness.proxies.rules.conntrack.untranslated`), one table
    walk each, which at thousands of Services is most of its sync or exceeds the proxy's
    command timeout. The sync's time, or why it failed (the target is left as it is: this is
    the last measure of a size)."""
    target.send(TrafficRequest(PROBE, count=FLOW_CONNECTIONS, timeout_s=1.0))
    node = target.cluster.node_netns if target.cluster else ""
    figures: dict[str, Any] = {"flows_tracked": tracked_flows(node)}
    try:
        target.apply(RestartProxy())
    except EnvironmentProblem as problem:
        return {**figures, "flows_sync_failed": str(problem)}
    return {**figures, "flows_sync_ms": round(proxy_of(target).last_sync_ms, 2)}


def measure_size(name: str, endpoints: int, services: int) -> Any:
    """One proxy at one size (see the module docstring)."""
    cls = TIMED[name]
    cluster = bulk(endpoints, services)
    target = LocalTarget(cls, controller_class=bulk_controller(cluster))
    target.open()
    try:
        # the bulk first, alone, while the node tracks no connection yet (the probe's pods,
        # once made, are connected to from the node): see `measure_restart_with_flows`
        target.apply_many(())
        target.apply_many(PROBE_EVENTS)
        wait_served(target, PROBE_PODS[0], time.perf_counter())
        figures: dict[str, Any] = {"endpoints": cluster.endpoint_count, "services": services}
        figures.update(measure_changes(target, BARE_COMMANDS[name]))
        figures.update(measure_floor(target, BARE_COMMANDS[name]))
        assert target.cluster is not None
        client = target.cluster.clients[TrafficRequest(PROBE).client].netns
        vip = target.state.services[PROBE]
        latencies = connect_times_us(client, vip.cluster_ip, vip.ports[0].port,
                                     PROGCOST_CONNECTIONS)  # fmt: skip
        figures.update(first_packet_us=median(latencies, 1), connections=len(latencies))
        figures.update(measure_full(target, BARE_COMMANDS[name]))
        figures.update(measure_restart_with_flows(target))
        return figures
    finally:
        target.close()


@contextlib.contextmanager
def first_on_path(directory: str | None) -> Iterator[None]:
    """Within the block, `directory` (if any) comes first on this process's PATH, so the
    proxy's rule commands and the bare replays run its tools; PATH is restored after."""
    if directory is None:
        yield
        return
    before = os.environ["PATH"]
    os.environ["PATH"] = f"{directory}{os.pathsep}{before}"
    try:
        yield
    finally:
        os.environ["PATH"] = before


def variant_name(tool: str, directory: str) -> str:
    """A variant's short name: `nft v1.1.3` from `nftables v1.1.3 (Commodore Bullmoose #4)`,
    else the directory it came from."""
    words = tool.split()
    return f"nft {words[1]}" if len(words) > 1 and words[1].startswith("v") else directory


def measure(name: str, nft_directory: str | None = None) -> dict[str, Any]:
    """Every size for proxy `name`, smallest first, with the rule tool found first on PATH
    (`nft_directory` first, for a variant: see the module docstring). A size that cannot be
    measured here (a command refused or timed out) is recorded as failed with the reason; a
    proxy whose every size failed (a missing tool) as failed itself."""
    with first_on_path(nft_directory):
        tool = tool_version(PROXY_TOOLS[name])
        named: dict[str, Any] = {"proxy": name, "tool": tool}
        if nft_directory is not None:
            named["variant"] = variant_name(tool, nft_directory)
        return {**named, **measure_sizes(name)}


def measure_sizes(name: str) -> dict[str, Any]:
    """`measure`'s figures: `sizes`, or `failed` with the first size's reason."""
    sizes: list[dict[str, Any]] = []
    for endpoints, services in zip(PROGCOST_ENDPOINTS, PROGCOST_SERVICES, strict=True):
        try:
            sizes.append(measure_size(name, endpoints, services))
        except EnvironmentProblem as problem:
            sizes.append({"endpoints": endpoints, "services": services, "failed": str(problem)})
    if all("failed" in size for size in sizes):
        return {"failed": sizes[0]["failed"]}
    return {"sizes": sizes}


def test_programming_cost_at_scale(output_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    unknown = sorted(set(PROGCOST_PROXIES) - set(TIMED))
    if unknown:
        raise pytest.UsageError(
            f"HARNESS_BENCH_PROGCOST_PROXIES names {unknown}; use iptables and/or nftables"
        )
    if not PROGCOST_PROXIES:
        pytest.skip("no kernel-rule proxy (iptables, nftables) among HARNESS_BENCH_PROXIES")
    for directory in PROGCOST_NFT:
        if not os.access(Path(directory) / "nft", os.X_OK):
            raise pytest.UsageError(
                f"HARNESS_BENCH_PROGCOST_NFT names {directory!r}, which holds no executable nft"
                " (.venv/bin/python3 bench/debian_nft.py DIR fetches Debian 13's)"
            )
    started = datetime.datetime.now(datetime.UTC)
    results = [measure(name) for name in PROGCOST_PROXIES]
    if "nftables" in PROGCOST_PROXIES:
        results += [measure("nftables", directory) for directory in PROGCOST_NFT]
    report = {
        "benchmark": "programming cost at scale: one endpoint change and a full sync against the"
        " bare rule command, and first-packet latency through the VIP",
        "profile": PROFILE,
        "settings": {
            "client": TrafficRequest(PROBE).client,
            "change_rounds": 2 * PROGCOST_ROUNDS,
            "full_rounds": PROGCOST_FULL_ROUNDS,
            "connections": PROGCOST_CONNECTIONS,
            "probe": "one Service of two real pods; a change moves its one usable endpoint"
            " from one pod to the other (readiness), served when a fresh connection through"
            " the VIP answers from the new pod",
            "bulk": "the other endpoints are EndpointSlice entries handed to the proxy through"
            " its contract, at addresses no pod holds (not pods: no namespace each); they"
            " only make the rules as large as such a cluster's",
            "first_packet": "connect time (SYN to SYN-ACK) of fresh TCP connections from the"
            " client to the probe's VIP (iptables: its rule last in KUBE-SERVICES, after every"
            " bulk Service's)",
            "floor": "the bare command applying the smallest transaction that commits (nftables:"
            " one unused service-ips element added and removed; iptables: one empty chain made and"
            " deleted), the least any change costs at that ruleset's size; floor_goto (nftables):"
            " the same with a goto (an unused no-endpoint-services element going to the reject"
            " chain), which has the kernel validate every chain reachable from the base chains,"
            " as every endpoint change does",
            "full_sync": "after a proxy restart on a node whose conntrack table was flushed"
            " first; flows_*: one restart more with the connections"
            f" {FLOW_CONNECTIONS} fresh probe requests left tracked",
        },
        "goals": GOALS,
        "results": results,
    }
    print(json.dumps(report, indent=2))
    print(f"wrote {write_figures(output_dir, 'programming_cost.json', report, started)}")
    assert structure_problems(report) == []
    for result in results:
        for figures in result.get("sizes", []):
            if "failed" not in figures:
                assert figures["change_lines_max"] <= CHANGE_LINES_AT_MOST, (
                    result["proxy"],
                    figures,
                )
