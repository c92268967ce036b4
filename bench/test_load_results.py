"""The benchmark's readers of wrk and locust output (bench/load_results.py), the workers'
tallies (bench/worker_tally.py), its like-with-like ratio rules and the structure every
throughput.json must have (bench/figure_rules.py): no traffic, fast.

The wrk text is wrk 4.1's report as captured here; the locust entries have the shape of
locust 2.47's `--json-file`; the tally files are what bench/locustfile.py's workers write.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from figure_rules import structure_problems
from load_results import (
    Generator,
    LoadResult,
    distribution,
    histogram_percentile,
    paired_ratio,
    parse_locust,
    parse_wrk,
    ratio_to,
    scaling,
    steady_rate,
    summarise,
)
from pod_identity import pod_of
from worker_tally import SCHEMA, Tally, bucket_us, merge

WRK = Generator("wrk", 2, 10)
LOCUST = Generator("locust", 2, 10, "locustfile.py (fast)")

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


def test_wrk_report_gives_rate_latency_percentiles_in_microseconds_and_every_error() -> None:
    result = parse_wrk(WRK_REPORT)
    assert (result.requests, result.duration_s, result.requests_per_s) == (10481, 2.01, 5217.03)
    assert result.latency_us == {50: 183.0, 90: 3240.0, 99: 1_010_000.0}
    assert result.errors == 1 + 2 + 3 + 4


def test_wrk_sub_microsecond_digits_are_kept() -> None:
    result = parse_wrk(WRK_REPORT.replace("183.00us", "97.51us"))
    assert result.latency_us[50] == 97.51


def test_a_wrk_report_without_errors_has_none() -> None:
    clean = "\n".join(
        line for line in WRK_REPORT.splitlines() if "errors" not in line and "Non-2xx" not in line
    )
    assert parse_wrk(clean).errors == 0


def test_text_that_is_not_a_wrk_report_is_refused() -> None:
    with pytest.raises(ValueError, match="not a wrk report"):
        parse_wrk("unable to connect to 10.96.0.10:80 Connection refused")


def tally_file(
    histogram: dict[int, int], backends: dict[str, int], not_a_pod: int = 0
) -> dict[str, object]:
    return {"schema": SCHEMA, "pid": 1, "histogram_us": {str(k): v for k, v in histogram.items()},
            "backends": backends, "not_a_pod": not_a_pod}  # fmt: skip


def test_locust_stats_give_the_steady_rate_and_the_tallies_pods_and_latencies() -> None:
    # two workers' tallies: their pods are summed, their histograms merged
    workers = [tally_file({180: 60, 950: 29}, {"web-0": 60, "web-1": 29}, not_a_pod=2),
               tally_file({180: 30, 4120: 1}, {"web-0": 31})]  # fmt: skip
    result = parse_locust([entry("/", 120), entry("/", 5, failures=5)], workers)
    assert result.backends == {"web-0": 91, "web-1": 29}
    assert (result.requests, result.errors, result.duration_s) == (125, 5 + 2, 4.0)
    # whole seconds only (101, 102): the partial first and last are left out
    assert result.requests_per_s == (60 + 2) * 1.0
    # never locust's own histogram ("1" and "9" ms)
    assert result.latency_us == {50: 180.0, 90: 950.0, 99: 950.0}


def test_a_locust_run_without_tallies_has_no_latency_and_no_pods() -> None:
    result = parse_locust([entry("/", 120)])
    assert result.latency_us == {50: None, 90: None, 99: None}
    assert result.backends == {}


def test_a_malformed_tally_is_refused() -> None:
    with pytest.raises(ValueError, match=r"not a harness\.worker-tally/v1 file"):
        parse_locust([entry("/", 1)], [{"schema": "other"}])
    with pytest.raises(ValueError, match="bad count"):
        merge([tally_file({1: -3}, {})])
    with pytest.raises(ValueError, match="bad count"):
        merge([tally_file({}, {"web-0": True})])


def test_histogram_buckets_are_exact_microseconds_then_three_significant_digits() -> None:
    assert [bucket_us(v) for v in (0.4, 183.4, 999.6)] == [0, 183, 1000]
    assert [bucket_us(v) for v in (1234.0, 98_765.0, -2.0)] == [1230, 98_800, 0]


def test_a_worker_writes_its_tally_once_per_process(tmp_path: Path) -> None:
    tally = Tally()
    assert tally.write(tmp_path) is None  # a master counts nothing and writes nothing
    for milliseconds in (0.1834, 0.1831, 12.3456):
        tally.add_latency_ms(milliseconds)
    tally.add_answer(b"web-3 u4")
    tally.add_answer(b"<html>oops</html>")
    path = tally.write(tmp_path)
    assert path is not None and tally.write(tmp_path) == path
    merged = merge([json.loads(path.read_text())])
    assert merged == Tally({183: 2, 12_300: 1}, {"web-3": 1}, not_a_pod=1)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_steady_rate_falls_back_to_the_mean_for_short_runs() -> None:
    assert steady_rate({100: 5, 101: 7}, 12, 2.0) == 6.0
    assert steady_rate({}, 0, 0.0) == 0.0


def test_histogram_percentile_is_nearest_rank() -> None:
    assert histogram_percentile({1: 98, 5: 1, 40: 1}, 99) == 5
    assert histogram_percentile({1: 98, 5: 1, 40: 1}, 100) == 40
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
    summary = summarise(rounds, WRK)
    assert summary["requests_per_s"] == 20.0
    assert summary["requests"] == 3 * 10481 and summary["errors"] == 3 * 10
    assert summary["round_requests_per_s"] == [10.0, 30.0, 20.0]
    assert summary["generator"] == {"tool": "wrk", "threads": 2, "connections": 10}
    assert (summary["latency_p50_us"], summary["latency_p99_us"]) == (183.0, 1_010_000.0)
    with pytest.raises(ValueError, match="another tool"):
        summarise(rounds, LOCUST)


def run(rate: float, generator: Generator = LOCUST) -> LoadResult:
    return LoadResult(generator.tool, 100, 0, 1.0, rate, {50: 1.0, 90: 2.0, 99: 3.0})


def test_a_ratio_compares_like_with_like_only() -> None:
    pod, vip = summarise([run(1000.0)], LOCUST), summarise([run(900.0)], LOCUST)
    assert ratio_to(vip, pod, "locust_pod_keepalive")["ratio_to_ceiling"] == 0.9
    other_workers = summarise([run(500.0)], Generator("locust", 1, 10, "locustfile.py (fast)"))
    with pytest.raises(ValueError, match="not like with like"):
        ratio_to(vip, other_workers, "locust_pod_keepalive")
    with pytest.raises(ValueError, match="not like with like"):
        ratio_to(vip, summarise([run(9000.0, WRK)], WRK), "wrk_pod_keepalive")
    # the one setting a ratio measures may differ, and only that one
    assert ratio_to(vip, other_workers, "w1", varying=("workers",))["ratio_to_ceiling"] == 1.8
    bare = summarise([run(1000.0)], Generator("locust", 1, 10, "locustfile_bare.py"))
    with pytest.raises(ValueError, match="not like with like"):
        ratio_to(vip, bare, "bare", varying=("script",))
    failed = {"tool": "locust", "generator": LOCUST.describe(), "failed": "no stats"}
    assert ratio_to(vip, failed, "pod")["ratio_to_ceiling"] is None


def test_paired_ratio_is_the_median_of_each_rounds_ratio() -> None:
    runs = [run(900.0), run(400.0), None, run(1000.0)]
    ceilings = [run(1000.0), run(800.0), run(1.0), run(1000.0)]
    assert paired_ratio(runs, ceilings) == 0.9
    assert paired_ratio([None], [run(1.0)]) is None


def test_scaling_names_the_first_worker_count_that_gains_too_little() -> None:
    grows = scaling({1: 5000.0, 2: 7000.0, 3: 7100.0}, {1: 1.0, 2: 1.4, 3: 1.45})
    assert grows["workers"] == [1, 2, 3] and grows["x_one_worker"] == [1.0, 1.4, 1.45]
    assert grows["stops_at"] == 3
    assert scaling({1: 5000.0, 2: 9000.0}, {1: 1.0, 2: 1.8})["stops_at"] is None
    assert scaling({1: None, 2: 9000.0}, {1: None, 2: None})["stops_at"] is None


def test_pod_identity_is_name_and_uid() -> None:
    assert pod_of("web-3 u4") == "web-3"
    assert pod_of("web-3--0f1e2d\n") == "web-3"  # the kube target's agnhost /hostname
    assert pod_of("web-3--") is None and pod_of("--u4") is None
    assert pod_of("<html>oops</html>") is None
    assert pod_of("") is None


def report_of(vip: dict[str, object], calibration: dict[str, object] | None) -> dict[str, object]:
    pod = summarise([run(1000.0)], LOCUST)
    runs = {"locust_pod_keepalive": pod, "locust_vip_keepalive": vip}
    return {"results": [{"proxy": "iptables", "runs": runs}], "calibration": calibration}


def calibration_of(workers_run: dict[str, object]) -> dict[str, object]:
    one = summarise([run(5000.0)], Generator("locust", 1, 10, "locustfile.py (fast)"))
    bare = {**summarise([run(8000.0)], Generator("locust", 2, 10, "locustfile_bare.py")),
            "latency_p50_us": None}  # fmt: skip
    runs = {"locust_pod_keepalive_w1": one, "locust_pod_keepalive_w2": workers_run,
            "bare_pod_keepalive_w2": bare}  # fmt: skip
    return {"runs": runs, "harness_over_bare": 0.9, "scaling": scaling({1: 1.0, 2: 2.0}, {})}


def test_a_well_formed_throughput_report_has_no_structure_problem() -> None:
    vip = ratio_to(summarise([run(900.0)], LOCUST), summarise([run(1000.0)], LOCUST),
                   "locust_pod_keepalive")  # fmt: skip
    two = ratio_to(summarise([run(7200.0)], LOCUST),
                   calibration_of({})["runs"]["bare_pod_keepalive_w2"],  # type: ignore[index]
                   "bare_pod_keepalive_w2", ("script",))  # fmt: skip
    assert structure_problems(report_of(vip, calibration_of(two))) == []


def test_structure_problems_name_missing_latencies_foreign_ceilings_and_bad_ratios() -> None:
    vip = {**summarise([run(900.0)], LOCUST), "latency_p90_us": None,
           "ceiling": "wrk_pod_keepalive", "ratio_to_ceiling": 0.5}  # fmt: skip
    assert structure_problems(report_of(vip, calibration_of({}))) == [
        "iptables locust_vip_keepalive: latency_p90_us is None, not microseconds",
        "iptables locust_vip_keepalive: its ceiling 'wrk_pod_keepalive' is not a run of the"
        " same session",
        "calibration locust_pod_keepalive_w2: no generator named",
        "calibration locust_pod_keepalive_w2: latency_p50_us is None, not microseconds",
        "calibration locust_pod_keepalive_w2: latency_p90_us is None, not microseconds",
        "calibration locust_pod_keepalive_w2: latency_p99_us is None, not microseconds",
    ]
    wrong = {**summarise([run(900.0)], LOCUST), "ceiling": "locust_pod_keepalive",
             "ratio_to_ceiling": 0.5}  # fmt: skip
    assert structure_problems(report_of(wrong, None)) == [
        "iptables locust_vip_keepalive: ratio 0.5 is not 900.0 / 1000.0",
        "no calibration of the generator",
    ]
    across = {**summarise([run(900.0)], Generator("locust", 1, 10, "locustfile.py (fast)")),
              "ceiling": "locust_pod_keepalive", "ratio_to_ceiling": 0.9}  # fmt: skip
    assert structure_problems(report_of(across, None))[0] == (
        "iptables locust_vip_keepalive: compared with locust_pod_keepalive, a run of another"
        " generator (['workers'])"
    )
