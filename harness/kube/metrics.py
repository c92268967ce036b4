"""kube-proxy's own sync metrics: the cross-check of the harness's programming latency.

kube-proxy exports (`pkg/proxy/metrics/metrics.go`):

- `kubeproxy_network_programming_duration_seconds`, a histogram of the time from a Service or
  EndpointSlice change (the `endpoints.kubernetes.io/last-change-trigger-time` annotation the
  EndpointSlice controller writes) to the rules being programmed (SLI:
  sig-scalability/slos/network_programming_latency.md);
- `kubeproxy_sync_proxy_rules_duration_seconds`, a histogram of each sync's own duration;
- `kubeproxy_sync_proxy_rules_last_timestamp_seconds`, a gauge: when the last sync succeeded.

The harness measures programming latency end to end, from its API write to the first observed
data-plane effect; these are the proxy's view of the same run. The first sync after a proxy
(re)start reports the whole backlog and is left out (kubernetes#82378): a run reads the
histograms once the proxy has synced after `open()` and again at the end, and reports the
difference (`MetricsWindow`).

Where they are reachable:

- `--pods local`: the proxy runs in the node namespace; its metrics are at the address of its
  command's `--metrics-bind-address` (kube-proxy's default, 127.0.0.1:10249, without one), read
  from inside that namespace (`read_in_netns`).
- `--pods cluster`: kube-proxy serves metrics on each node's loopback by default; through the
  API server's node proxy (`GET /api/v1/nodes/NODE:10249/proxy/metrics`, permission
  `get nodes/proxy`) only if kube-proxy's `metricsBindAddress` is not loopback. Not read yet:
  reported as not available, with that reason.

Absent metrics are never an error: they are reported as "not available" with the reason.
`parse` and `summary` are pure; reading changes nothing. `LiveHistogram` is the writing side,
used by the harness's stand-in proxy (`harness.kube.standin`) to serve the same names.
"""

from __future__ import annotations

import math
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.kube.proxy_sync import LAST_SYNC, gauge_values
from harness.proxies.process import netns_argv

SUBSYSTEM = "kubeproxy"
METRIC = f"{SUBSYSTEM}_network_programming_duration_seconds"
SYNC_METRIC = f"{SUBSYSTEM}_sync_proxy_rules_duration_seconds"
LAST_SYNC_METRIC = LAST_SYNC
METRICS_PORT = 10249
DEFAULT_BIND_ADDRESS = f"127.0.0.1:{METRICS_PORT}"
BIND_FLAG = "--metrics-bind-address"

# pkg/proxy/metrics/metrics.go: LinearBuckets(0.25, 0.25, 2), LinearBuckets(1, 1, 59),
# LinearBuckets(60, 5, 12), LinearBuckets(120, 30, 7)
PROGRAMMING_BUCKETS_S: tuple[float, ...] = (
    0.25,
    0.5,
    *(float(s) for s in range(1, 60)),
    *(float(s) for s in range(60, 120, 5)),
    *(float(s) for s in range(120, 301, 30)),
)
# pkg/proxy/metrics/metrics.go: ExponentialBuckets(0.001, 2, 15), 1 ms to 16.384 s
SYNC_BUCKETS_S: tuple[float, ...] = tuple(0.001 * 2**i for i in range(15))


@dataclass(frozen=True)
class Histogram:
    """A cumulative histogram read back: `buckets` are (upper bound in seconds, count at or
    below), +Inf included."""

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

    def since(self, earlier: Histogram) -> Histogram:
        """The observations made after `earlier` was read (to leave out the first sync)."""
        before = dict(earlier.buckets)
        return Histogram(
            self.count - earlier.count,
            self.sum_s - earlier.sum_s,
            tuple((bound, n - before.get(bound, 0)) for bound, n in self.buckets),
        )

    def plus(self, other: Histogram) -> Histogram:
        """Both histograms' observations (the windows of two proxy lifetimes)."""
        counts = dict(self.buckets)
        for bound, n in other.buckets:
            counts[bound] = counts.get(bound, 0) + n
        return Histogram(
            self.count + other.count, self.sum_s + other.sum_s, tuple(sorted(counts.items()))
        )


ProgrammingLatency = Histogram  # the name the kube target's accessor has always returned


def parse(text: str, metric: str = METRIC) -> Histogram | None:
    """Histogram `metric` from Prometheus text exposition, or None if it is absent."""
    buckets: dict[float, int] = {}
    count: int | None = None
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(metric):
            continue
        name, _, rest = line.partition(" ")
        value = rest.split()[0] if rest.split() else ""
        try:
            number = float(value)
        except ValueError:
            continue
        if name.startswith(f"{metric}_bucket"):
            bound = name.split('le="', 1)[1].split('"', 1)[0] if 'le="' in name else ""
            buckets[math.inf if bound == "+Inf" else float(bound)] = int(number)
        elif name == f"{metric}_count":
            count = int(number)
        elif name == f"{metric}_sum":
            total = number
    if count is None:
        return None
    return Histogram(count, total, tuple(sorted(buckets.items())))


# -- where the metrics are -------------------------------------------------------------------------
def bind_address(command: str | None) -> tuple[str, int]:
    """The host and port a proxy command serves metrics on: its `--metrics-bind-address`
    (`HOST:PORT`, `=` or a space before it), else kube-proxy's default 127.0.0.1:10249. A
    wildcard host (0.0.0.0, an empty host) is read at 127.0.0.1."""
    words: list[str] = []
    if command:
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
    value = DEFAULT_BIND_ADDRESS
    for index, word in enumerate(words):
        if word.startswith(f"{BIND_FLAG}="):
            value = word.split("=", 1)[1]
        elif word == BIND_FLAG and index + 1 < len(words):
            value = words[index + 1]
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    try:
        return host, int(port)
    except ValueError:
        return "127.0.0.1", METRICS_PORT


def read_in_netns(
    netns: str, address: tuple[str, int] = ("127.0.0.1", METRICS_PORT), timeout_s: float = 5.0
) -> str | None:
    """The metrics text served at `address` inside `netns`, or None if unreachable."""
    host, port = address
    url = f"http://{host}:{port}/metrics"
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


# -- a run's window --------------------------------------------------------------------------------
def _figures(histogram: Histogram) -> dict[str, Any]:
    def bound(q: float) -> float | str | None:
        value = histogram.quantile(q)
        return "+Inf" if value is not None and math.isinf(value) else value

    return {
        "count": histogram.count,
        "sum_s": round(histogram.sum_s, 6),
        "p50_le_s": bound(0.5),
        "p99_le_s": bound(0.99),
    }


def summary(programming: Histogram | None, sync: Histogram | None, source: str) -> dict[str, Any]:
    """The results file's `proxy_metrics`: each histogram's count, sum and the upper bounds of
    the buckets holding p50 and p99 (kube-proxy's own resolution), named as kube-proxy names
    them without the subsystem; a histogram the proxy does not export is None."""
    return {
        "available": True,
        "source": source,
        "network_programming_duration_seconds": _figures(programming) if programming else None,
        "sync_proxy_rules_duration_seconds": _figures(sync) if sync else None,
    }


def not_available(reason: str) -> dict[str, Any]:
    """The results file's `proxy_metrics` when there is nothing to read, and why."""
    return {"available": False, "reason": reason}


def _bound_ms(value: object) -> str:
    if isinstance(value, int | float):
        return f"<={value * 1000:g}"
    return "-" if value is None else f"<={value}"


def metrics_text(metrics: dict[str, Any] | None) -> str | None:
    """A results file's `proxy_metrics` in one line, to read beside the harness's programming
    latency (the run summary, the report): p50/p99 as kube-proxy's bucket bounds (`<=250` ms:
    in the bucket up to 250 ms), or "not available" and why; None for a run whose target has no
    proxy metrics at all (and for results files written before they were recorded)."""
    if metrics is None:
        return None
    if not metrics.get("available"):
        return f"proxy's own metrics: not available ({metrics.get('reason', 'no reason given')})"
    parts = []
    for key, label, unit in (
        ("network_programming_duration_seconds", "network programming", "changes"),
        ("sync_proxy_rules_duration_seconds", "rule syncs", "syncs"),
    ):
        figures = metrics.get(key)
        if not isinstance(figures, dict):
            parts.append(f"{label} not exported")
            continue
        parts.append(
            f"{label} p50/p99 {_bound_ms(figures.get('p50_le_s'))}/"
            f"{_bound_ms(figures.get('p99_le_s'))} ms over {figures.get('count')} {unit}"
        )
    return "proxy's own metrics: " + "; ".join(parts)


class MetricsWindow:
    """The proxy's histograms over a run, leaving out each proxy lifetime's first sync.

    `begin(text)` is given the metrics read once the proxy has synced after `open()` (the
    baseline); `end(text)` those read before the proxy stops. A target that is closed and opened
    again (the confirmations of a failure) gives one begin/end pair per proxy lifetime; the
    windows add up. `result()` is the summary so far, or `not_available` with the first reason
    met. Never raises on odd input.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._baseline: tuple[Histogram | None, Histogram | None] | None = None
        self._total: tuple[Histogram | None, Histogram | None] | None = None
        self._reason: str | None = None

    def begin(self, text: str | None, reason: str = "") -> None:
        if text is None:
            self._reason = self._reason or reason or "the metrics endpoint did not answer"
            self._baseline = None
            return
        self._baseline = (parse(text, METRIC), parse(text, SYNC_METRIC))

    def end(self, text: str | None) -> None:
        """Close the current window with `text` (None: nothing read; the window is lost)."""
        baseline, self._baseline = self._baseline, None
        if baseline is None or text is None:
            return
        window = tuple(
            _since(parse(text, metric), start)
            for metric, start in zip((METRIC, SYNC_METRIC), baseline, strict=True)
        )
        if self._total is None:
            self._total = (window[0], window[1])
        else:
            self._total = (_plus(self._total[0], window[0]), _plus(self._total[1], window[1]))

    @property
    def open(self) -> bool:
        return self._baseline is not None

    def result(self) -> dict[str, Any]:
        if self._total is None:
            return not_available(self._reason or "the proxy's metrics were never read")
        programming, sync = self._total
        if programming is None and sync is None:
            return not_available(f"{self.source} serves neither {METRIC} nor {SYNC_METRIC}")
        return summary(programming, sync, self.source)


def _since(now: Histogram | None, start: Histogram | None) -> Histogram | None:
    if now is None:
        return None
    return now.since(start) if start is not None and start.count <= now.count else now


def _plus(a: Histogram | None, b: Histogram | None) -> Histogram | None:
    if a is None or b is None:
        return a or b
    return a.plus(b)


def wait_for_first_sync(
    read: Callable[[], str | None], wait: Callable[[float], object], attempts: int
) -> str | None:
    """The metrics text once the proxy reports a sync (its last-sync gauge is set, or a sync
    histogram has an observation), polling `read` up to `attempts` times with `wait(0.1)` in
    between; the last text read (None: never reachable) if no sync shows in time."""
    text: str | None = None
    for attempt in range(attempts):
        text = read()
        if text is not None:
            synced = max(gauge_values(text, LAST_SYNC_METRIC), default=0.0) > 0
            histogram = parse(text, SYNC_METRIC)
            if synced or (histogram is not None and histogram.count > 0):
                return text
        if attempt + 1 < attempts:
            wait(0.1)
    return text


# -- the writing side (the stand-in proxy) ---------------------------------------------------------
class LiveHistogram:
    """A Prometheus histogram that is observed into and rendered as text; thread-safe."""

    def __init__(self, name: str, help_text: str, bounds: Sequence[float]) -> None:
        self.name, self.help_text = name, help_text
        self.bounds = tuple(bounds)
        self._counts = [0] * len(self.bounds)
        self._count = 0
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value_s: float) -> None:
        with self._lock:
            self._count += 1
            self._sum += value_s
            for index, bound in enumerate(self.bounds):
                if value_s <= bound:
                    self._counts[index] += 1

    def render(self) -> Iterable[str]:
        with self._lock:
            counts, count, total = list(self._counts), self._count, self._sum
        yield f"# HELP {self.name} {self.help_text}"
        yield f"# TYPE {self.name} histogram"
        for bound, n in zip(self.bounds, counts, strict=True):
            yield f'{self.name}_bucket{{le="{bound:g}"}} {n}'
        yield f'{self.name}_bucket{{le="+Inf"}} {count}'
        yield f"{self.name}_sum {total!r}"
        yield f"{self.name}_count {count}"
