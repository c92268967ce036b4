"""kube-proxy's own programming latency, the cross-check of the harness's measurement.

kube-proxy exports `kubeproxy_network_programming_duration_seconds`, a histogram of the time from
a Service or EndpointSlice change (the `endpoints.kubernetes.io/last-change-trigger-time`
annotation, or the object's creation) to the rules being programmed (SLI:
sig-scalability/slos/network_programming_latency.md). The harness measures the same interval end
to end, from its API write to the first observed data-plane effect; this reads the proxy's view.
The first sync after a proxy (re)start reports the whole backlog and should be ignored
(kubernetes#82378).

Where it is reachable:

- `--pods local`: the proxy runs in the node namespace, its metrics on 127.0.0.1:10249 there;
  the harness reads them from inside that namespace (`read_in_netns`).
- `--pods cluster`: kube-proxy serves metrics on each node's loopback by default; through the
  API server's node proxy (`GET /api/v1/nodes/NODE:10249/proxy/metrics`, permission
  `get nodes/proxy`) only if kube-proxy's `metricsBindAddress` is not loopback. Optional: None
  when not reachable.

`parse` is pure; reading changes nothing.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass

from harness.proxies.process import netns_argv

METRIC = "kubeproxy_network_programming_duration_seconds"
METRICS_PORT = 10249


@dataclass(frozen=True)
class ProgrammingLatency:
    """A cumulative histogram: `buckets` are (upper bound in seconds, count at or below)."""

    count: int
    sum_s: float
    buckets: tuple[tuple[float, int], ...]

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding quantile `q` (Prometheus' resolution), or None
        without observations. An upper bound, never an interpolation."""
        if self.count == 0:
            return None
        rank = q * self.count
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                return bound
        return math.inf

    def since(self, earlier: ProgrammingLatency) -> ProgrammingLatency:
        """The observations made after `earlier` was read (to leave out the first sync)."""
        before = dict(earlier.buckets)
        return ProgrammingLatency(
            self.count - earlier.count,
            self.sum_s - earlier.sum_s,
            tuple((bound, n - before.get(bound, 0)) for bound, n in self.buckets),
        )


def parse(text: str) -> ProgrammingLatency | None:
    """The histogram from Prometheus text exposition, or None if the metric is absent."""
    buckets: dict[float, int] = {}
    count: int | None = None
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(METRIC):
            continue
        name, _, rest = line.partition(" ")
        value = rest.split()[0] if rest.split() else ""
        try:
            number = float(value)
        except ValueError:
            continue
        if name.startswith(f"{METRIC}_bucket"):
            bound = name.split('le="', 1)[1].split('"', 1)[0] if 'le="' in name else ""
            buckets[math.inf if bound == "+Inf" else float(bound)] = int(number)
        elif name == f"{METRIC}_count":
            count = int(number)
        elif name == f"{METRIC}_sum":
            total = number
    if count is None:
        return None
    return ProgrammingLatency(count, total, tuple(sorted(buckets.items())))


def read_in_netns(netns: str, port: int = METRICS_PORT, timeout_s: float = 5.0) -> str | None:
    """The metrics text served on 127.0.0.1:`port` inside `netns`, or None if unreachable."""
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        result = subprocess.run(
            netns_argv(netns, ["curl", "-s", "--max-time", f"{timeout_s:g}", url]),
            capture_output=True,
            text=True,
            timeout=timeout_s + 5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None
