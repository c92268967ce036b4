"""kube-proxy's programming-latency histogram, parsed from Prometheus text."""

from __future__ import annotations

import math

from harness.kube.metrics import parse

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
