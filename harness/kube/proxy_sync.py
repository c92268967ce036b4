"""kube-proxy's own report that it has programmed the EndpointSlices it was handed: the sync
evidence convergence waits for on a cluster (`harness.convergence`, issue 15 item 3).

kube-proxy exports, in its metrics (`pkg/proxy/metrics/metrics.go`):

- `kubeproxy_sync_proxy_rules_last_timestamp_seconds`: when its rules were last synced
  successfully (set at the end of a sync, on its wall clock);
- `kubeproxy_sync_proxy_rules_endpoint_changes_pending` and `..._service_changes_pending`: the
  changes its change trackers hold that no sync has read yet (a sync reads them at its start).

Its state is final for a change first seen at `changed_at_s` (the harness's wall clock, when the
last slice change of the step was observed) once nothing is pending and a sync ended after it.
Where the pending gauges are missing only the timestamp is used. A sync that began before the
change and ended after it passes for one that read it, if the next sync is in flight: the
traffic confirmation that follows covers that. Clocks: in `--pods local` kube-proxy runs on this
machine; elsewhere a skew between the node and this machine shifts the comparison by as much.

Pure: parses the text it is given (the caller scrapes it, `harness.kube.metrics.read_in_netns`).
"""

from __future__ import annotations

import math

from harness.proxies.base import SyncState

LAST_SYNC = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
PENDING = (
    "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
    "kubeproxy_sync_proxy_rules_service_changes_pending",
)


def gauge_values(text: str, metric: str) -> list[float]:
    """Every sample of gauge `metric` in Prometheus text exposition (one per label set); samples
    whose value does not parse are left out. Comments and other metrics are ignored."""
    values = []
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name != metric:
            continue
        fields = line.rsplit("}", 1)[-1].split() if "{" in line else line.split()[1:]
        try:
            value = float(fields[0])
        except (IndexError, ValueError):
            continue
        if not math.isnan(value):
            values.append(value)
    return values


def sync_state_from_metrics(text: str, changed_at_s: float) -> SyncState | None:
    """kube-proxy's report for a change seen at `changed_at_s` (Unix seconds), or None when the
    text holds no `LAST_SYNC` gauge (not kube-proxy's metrics, or a version without it: no
    evidence, and convergence falls back to traffic)."""
    last = gauge_values(text, LAST_SYNC)
    if not last:
        return None
    last_sync_s = min(last)  # several label sets (IP families): the one that lags decides
    pending = {name: max(gauge_values(text, name), default=0.0) for name in PENDING}
    waiting = {name.rsplit("_", 3)[-3]: int(n) for name, n in pending.items() if n > 0}
    after = last_sync_s - changed_at_s
    source = f"kube-proxy's metrics: last sync {after:+.3f} s from the change" + (
        ", pending " + ", ".join(f"{k} {n}" for k, n in waiting.items()) if waiting else ""
    )
    return SyncState(after >= 0 and not waiting, source)
