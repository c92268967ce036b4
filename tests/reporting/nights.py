"""Synthetic nightly runs for the regression and page tests: run directories whose iptables
keep-alive throughput is a chosen rate, published one dated report per night as the nightly
workflow does."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.reporting import write_report
from harness.reporting.runs import RUN_SCHEMA

FIXTURE = Path(__file__).parent / "fixtures" / "throughput.json"


def throughput(rate: float, base: Path = FIXTURE) -> dict[str, Any]:
    """`base` (a throughput.json whose first proxy is iptables) with iptables' keep-alive VIP
    run at `rate` requests/s and its ratio to the ceiling to match."""
    data: dict[str, Any] = copy.deepcopy(json.loads(base.read_text()))
    runs = data["results"][0]["runs"]
    ceiling = runs["wrk_pod_keepalive"]["requests_per_s"]
    runs["wrk_vip_keepalive"]["requests_per_s"] = rate
    runs["wrk_vip_keepalive"]["ratio_to_ceiling"] = round(rate / ceiling, 3)
    return data


def night(root: Path, day: int, rate: float, profile: str = "full", base: Path = FIXTURE) -> Path:
    """A run directory measured on 2026-11-`day` with iptables' keep-alive rate `rate`."""
    directory = root / f"run-{day:02d}"
    directory.mkdir(parents=True)
    started = f"2026-11-{day:02d}T02:17:00Z"
    manifest = {"schema": RUN_SCHEMA, "run": f"night-{day:02d}", "started_at": started,
                "host": {"name": "runner", "cpus": 2}, "profile": profile}  # fmt: skip
    (directory / "run.json").write_text(json.dumps(manifest))
    data = {**throughput(rate, base), "started_at": started}
    (directory / "throughput.json").write_text(json.dumps(data))
    return directory


def publish(tmp_path: Path, rates: Sequence[float], base: Path = FIXTURE) -> Path:
    """Publish one dated report per rate under tmp_path/published, in order; returns it."""
    root = tmp_path / "published"
    for day, rate in enumerate(rates, 1):
        run = night(tmp_path / "runs", day, rate, base=base)
        write_report([run], root / f"2026-11-{day:02d}", history_root=root)
    return root
