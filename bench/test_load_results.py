"""The benchmark's readers of wrk and locust output (bench/load_results.py): no traffic, fast.

The wrk text is wrk 4.1's report as captured here; the locust entries have the shape of
locust 2.47's `--json-file`.
"""

from __future__ import annotations

import pytest
from load_results import (
    distribution,
    histogram_percentile,
    parse_locust,
    parse_wrk,
    steady_rate,
    summarise,
)
from pod_identity import pod_of

WRK_REPORT = """\
Running 2s test @ http://10.96.0.10:80/
  2 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.67ms    1.16ms  10.19ms   81.31%
    Req/Sec     5.24k     0.93k    6.53k    70.00%
  Latency Distribution
     50%  183.00us
     75%    1.88ms
     90%    3.24ms
     99%    1.01s
  10481 requests in 2.01s, 0.91MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:   5217.03
Transfer/sec:    464.16KB
"""


def entry(name: str, requests: int, failures: int = 0) -> dict[str, object]:
    return {
        "name": name,
        "method": "GET",
        "num_requests": requests,
        "num_failures": failures,
        "start_time": 100.0,
        "last_request_timestamp": 104.0,
        "response_times": {"1": requests - 1, "9": 1},
        "num_reqs_per_sec": {"100": 10, "101": requests // 2, "102": requests // 2, "104": 3},
    }


def test_wrk_report_gives_rate_latency_percentiles_and_every_error() -> None:
    result = parse_wrk(WRK_REPORT)
    assert (result.requests, result.duration_s, result.requests_per_s) == (10481, 2.01, 5217.03)
    assert result.latency_p50_ms == pytest.approx(0.183)
    assert result.latency_p99_ms == pytest.approx(1010.0)
    assert result.errors == 1 + 2 + 3 + 4


def test_a_wrk_report_without_errors_has_none() -> None:
    clean = "\n".join(
        line for line in WRK_REPORT.splitlines() if "errors" not in line and "Non-2xx" not in line
    )
    assert parse_wrk(clean).errors == 0


def test_text_that_is_not_a_wrk_report_is_refused() -> None:
    with pytest.raises(ValueError, match="not a wrk report"):
        parse_wrk("unable to connect to 10.96.0.10:80 Connection refused")


def test_locust_entries_become_per_pod_counts_and_steady_rate() -> None:
    result = parse_locust([entry("backend:web-0", 100), entry("backend:web-1", 60),
                           entry("/", 5, failures=5)])  # fmt: skip
    assert result.backends == {"web-0": 100, "web-1": 60}
    assert (result.requests, result.errors, result.duration_s) == (165, 5, 4.0)
    # whole seconds only (101, 102): the partial first and last are left out
    assert result.requests_per_s == (50 + 30 + 2) * 1.0
    assert result.latency_p50_ms == 1.0 and result.latency_p99_ms == 9.0


def test_steady_rate_falls_back_to_the_mean_for_short_runs() -> None:
    assert steady_rate({100: 5, 101: 7}, 12, 2.0) == 6.0
    assert steady_rate({}, 0, 0.0) == 0.0


def test_histogram_percentile_is_nearest_rank() -> None:
    assert histogram_percentile({1.0: 98, 5.0: 1, 40.0: 1}, 99) == 5.0
    assert histogram_percentile({1.0: 98, 5.0: 1, 40.0: 1}, 100) == 40.0
    assert histogram_percentile({}, 50) is None


def test_distribution_counts_pods_that_never_answered() -> None:
    spread = distribution({"web-0": 30, "web-1": 10, "other-0": 1}, ["web-0", "web-1", "web-2"])
    assert spread["counts"] == {"web-0": 30, "web-1": 10, "web-2": 0}
    assert spread["pods_reached"] == 2
    assert spread["jain"] == round(40**2 / (3 * (30**2 + 10**2)), 4)
    assert spread["max_over_mean"] == round(30 / (40 / 3), 3)
    assert spread["outside_service"] == ["other-0"]


def test_summary_takes_medians_over_rounds_and_sums_counts() -> None:
    rounds = [parse_wrk(WRK_REPORT.replace("5217.03", rate)) for rate in ("10", "30", "20")]
    summary = summarise(rounds)
    assert summary["requests_per_s"] == 20.0
    assert summary["requests"] == 3 * 10481 and summary["errors"] == 3 * 10
    assert summary["round_requests_per_s"] == [10.0, 30.0, 20.0]


def test_pod_identity_is_name_and_uid() -> None:
    assert pod_of("web-3 u4") == "web-3"
    assert pod_of("<html>oops</html>") is None
    assert pod_of("") is None
