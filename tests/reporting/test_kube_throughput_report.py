"""The report reads kube_throughput.json (bench/test_kube_throughput.py, issue 13 item 3: locust
in the cluster against a real cluster's VIP): the throughput overview and every run beside the
local proxies' in "Throughput"; nothing at all when the file is absent (it is optional, so
earlier reports render again byte for byte); one note when malformed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.reporting.sections import build_sections
from harness.reporting.sources import OPTIONAL_FILES, load_sources

GENERATOR = {"tool": "locust", "workers": 2, "users": 10, "script": "locustfile.py (fast)"}


def run(rate: float, **extra: Any) -> dict[str, Any]:
    return {"tool": "locust", "generator": GENERATOR, "requests": int(rate * 5), "errors": 0,
            "requests_per_s": rate, "rounds": 1, "latency_p50_us": 900.0,
            "latency_p90_us": 1500.0, "latency_p99_us": 4000.0, **extra}  # fmt: skip


def kube_throughput_json() -> dict[str, Any]:
    """The shape bench/test_kube_throughput.py writes (schema and stamps added)."""
    spread = {"pods": 10, "pods_reached": 10, "jain": 0.99, "max_over_mean": 1.1}
    vip = run(1800.0, ceiling="locust_pod_keepalive", ratio_to_ceiling=0.9, distribution=spread)
    return {
        "schema": "harness.kube_throughput/v1",
        "measured_at": "2026-11-30T08:00:00Z",
        "host": {"name": "runner", "cpus": 4},
        "benchmark": "requests/s through a real cluster's Service VIP, locust in the cluster",
        "settings": {"pods": 10, "connections": 10, "locust_workers": 2, "locust_seconds": 5},
        "duration_s": 40.0,
        "results": [
            {
                "proxy": "kube (a real API server, v1.34.0, at https://127.0.0.1:6443)",
                "pods": 10,
                "runs": {"locust_pod_keepalive": run(2000.0), "locust_vip_keepalive": vip},
            }
        ],
    }


def throughput_section(directory: Path, data: object | None) -> Any:
    directory.mkdir(parents=True, exist_ok=True)
    if data is not None:
        (directory / "kube_throughput.json").write_text(json.dumps(data))
    sections, malformed = build_sections(load_sources([directory]))
    return next(s for s in sections if s.title == "Throughput"), malformed


def test_the_cluster_runs_show_with_their_ceiling_and_settings(tmp_path: Path) -> None:
    section, malformed = throughput_section(tmp_path / "run", kube_throughput_json())
    assert malformed == {}
    runs = [t for t in section.tables if t.title.startswith("kube (a real API server")]
    (table,) = runs
    vip = next(row for row in table.rows if row[0] == "locust_vip_keepalive")
    assert vip[2:5] == ("1,800", "0.900", "locust_pod_keepalive") and vip[-3:] == (
        "10",
        "0.990",
        "1.10",
    )
    assert any(n.startswith("a real cluster: locust in the cluster (2 worker pods") for n in
               section.notes)  # fmt: skip


def test_absent_it_is_no_part_of_the_report_and_malformed_it_is_one_note(tmp_path: Path) -> None:
    assert "kube_throughput.json" in OPTIONAL_FILES
    section, _ = throughput_section(tmp_path / "empty", None)
    texts = [*section.notes, *(t.title for t in section.tables)]
    assert not any("kube" in text or "real cluster" in text for text in texts)
    broken = {**kube_throughput_json(), "results": "nothing"}
    section, malformed = throughput_section(tmp_path / "broken", broken)
    assert "kube_throughput.json" in malformed
    assert [n for n in section.notes if n.startswith("kube_throughput.json: malformed, skipped")]
