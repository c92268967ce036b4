"""kube-proxy's sync histograms: parsed from Prometheus text, windowed over a run (each proxy
lifetime's first sync left out), and shown beside the harness's own latency."""

from __future__ import annotations

import math

from harness.kube.metrics import (
    LAST_SYNC_METRIC,
    METRIC,
    SYNC_METRIC,
    MetricsWindow,
    metrics_text,
    parse,
    wait_for_first_sync,
)
from harness.kube.proxy_sync import gauge_values
from harness.registry import TargetOptions
from harness.reporting.tables import proxy_metrics_line
from harness.targets.kube import NODE_METRICS_OFF, KubeTarget

TEXT = """\
# HELP kubeproxy_network_programming_duration_seconds [ALPHA] In Cluster Network Programming Latency
# TYPE kubeproxy_network_programming_duration_seconds histogram
kubeproxy_network_programming_duration_seconds_bucket{le="0.25"} 2
kubeproxy_network_programming_duration_seconds_bucket{le="0.5"} 6
kubeproxy_network_programming_duration_seconds_bucket{le="1"} 9
kubeproxy_network_programming_duration_seconds_bucket{le="+Inf"} 10
kubeproxy_network_programming_duration_seconds_sum 6.5
kubeproxy_network_programming_duration_seconds_count 10
kubeproxy_sync_proxy_rules_duration_seconds_count 40
"""


def test_parse_and_quantiles() -> None:
    histogram = parse(TEXT)
    assert histogram is not None
    assert (histogram.count, histogram.sum_s) == (10, 6.5)
    assert histogram.quantile(0.5) == 0.5  # the 5th observation lies in (0.25, 0.5]
    assert histogram.quantile(0.9) == 1.0
    assert histogram.quantile(0.99) == math.inf


def test_since_leaves_out_earlier_observations() -> None:
    later = parse(TEXT)
    earlier = parse(
        TEXT.replace("} 9", "} 2")
        .replace("} 6", "} 2")
        .replace("} 10", "} 2")
        .replace("_sum 6.5", "_sum 0.3")
        .replace("_count 10", "_count 2")
    )
    assert later is not None and earlier is not None
    delta = later.since(earlier)
    assert delta.count == 8 and delta.quantile(0.5) == 0.5


def test_absent_metric() -> None:
    assert parse("kubeproxy_sync_proxy_rules_duration_seconds_count 3\n") is None


# -- the run's window, and where it is shown ----------------------------------------------------
def _text(count: int, le_025: int, total: float, synced: float = 1.0) -> str:
    """kube-proxy's exposition with `count` programming observations, `le_025` of them in the
    0.25 s bucket, and as many syncs, each in the 1 ms bucket."""
    return (
        f'{METRIC}_bucket{{le="0.25"}} {le_025}\n{METRIC}_bucket{{le="1"}} {count}\n'
        f'{METRIC}_bucket{{le="+Inf"}} {count}\n{METRIC}_sum {total}\n{METRIC}_count {count}\n'
        f'{SYNC_METRIC}_bucket{{le="0.001"}} {count}\n{SYNC_METRIC}_bucket{{le="+Inf"}} {count}\n'
        f"{SYNC_METRIC}_sum {count * 0.0005}\n{SYNC_METRIC}_count {count}\n"
        f"{LAST_SYNC_METRIC} {synced}\n"
    )


def test_a_window_leaves_out_each_lifetimes_first_sync_and_adds_lifetimes_up() -> None:
    window = MetricsWindow("http://127.0.0.1:10249/metrics in the node namespace")
    window.begin(_text(5, 5, 0.5))  # the first sync's backlog: not the run's
    window.end(_text(9, 7, 2.0))
    window.begin(_text(1, 1, 0.1))  # a restarted proxy (a confirmation reopened the target)
    window.end(_text(3, 1, 1.1))
    result = window.result()
    programming = result["network_programming_duration_seconds"]
    assert (programming["count"], programming["sum_s"]) == (6, 2.5)
    assert (programming["p50_le_s"], programming["p99_le_s"]) == (1.0, 1.0)
    assert result["sync_proxy_rules_duration_seconds"]["count"] == 6
    assert result["available"] and not window.open


def test_absent_metrics_are_not_available_with_the_reason_never_an_error() -> None:
    window = MetricsWindow("x")
    window.begin(None, "nothing answered at x")
    window.end(None)
    assert window.result() == {"available": False, "reason": "nothing answered at x"}
    other = MetricsWindow("x")
    other.begin("some_other_metric 1\n")
    other.end("some_other_metric 2\n")
    assert not other.result()["available"] and "serves neither" in other.result()["reason"]
    assert metrics_text(window.result()) == (
        "proxy's own metrics: not available (nothing answered at x)"
    )
    assert metrics_text(None) is None


def test_the_baseline_waits_for_the_first_sync() -> None:
    answers = iter([None, "kubeproxy_sync_proxy_rules_last_timestamp_seconds 0\n", _text(1, 1, 1)])
    waits: list[float] = []
    text = wait_for_first_sync(lambda: next(answers), waits.append, attempts=5)
    assert text is not None and gauge_values(text, LAST_SYNC_METRIC) == [1.0] and len(waits) == 2
    assert wait_for_first_sync(lambda: None, waits.append, attempts=3) is None


def test_the_summary_and_the_report_show_them_beside_the_harness_figure() -> None:
    window = MetricsWindow("src")
    window.begin(_text(0, 0, 0.0))
    window.end(_text(4, 3, 0.9))
    line = metrics_text(window.result())
    assert line == (
        "proxy's own metrics: network programming p50/p99 <=250/<=1000 ms over 4 changes;"
        " rule syncs p50/p99 <=1/<=1 ms over 4 syncs"
    )
    data = {"proxy_metrics": window.result()}
    assert proxy_metrics_line("results.json", data) == f"results.json: {line}"
    assert proxy_metrics_line("old.json", {}) is None  # files from before: no line, same report


def test_the_kube_target_says_why_it_reads_no_metrics() -> None:
    cluster_mode = KubeTarget(TargetOptions(pods="cluster"))
    cluster_mode._begin_metrics()
    assert cluster_mode.proxy_metrics() == {"available": False, "reason": NODE_METRICS_OFF}
    local = KubeTarget(TargetOptions(pods="local"))
    local._begin_metrics()
    assert "no --proxy-command" in local.proxy_metrics()["reason"]
    given = KubeTarget(TargetOptions(pods="local", proxy_command="p --metrics-bind-address :9"))
    assert given._metrics.source == "http://127.0.0.1:9/metrics in the node namespace"
