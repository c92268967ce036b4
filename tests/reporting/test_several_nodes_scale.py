"""The several-nodes scale figures (issue 11: 3 nodes x 300 pods x 100 NodePort Services with
the iptables proxy, under 30 s and 512 MiB) are a table of their own in "Scale and speed" when
local_scale.json has them, with their goals; a file made before them renders as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.reporting.sections import build_sections
from harness.reporting.sources import load_sources

SEVERAL = {
    "goals": {"total_s": 30.0, "rss_mib": 512.0},
    "results": [
        {"proxy": "iptables", "nodes": 3, "pods": 300, "services": 100,
         "service_type": "NodePort", "setup_s": 2.096, "teardown_s": 7.025, "total_s": 9.432,
         "rss_mib": 156.375, "services_answering": 100, "left_behind": [],
         "meets_goals": True},
    ],
}  # fmt: skip


def local_scale(several: dict[str, Any] | None) -> dict[str, Any]:
    one = {"proxy": "userspace", "pods": 10, "services": 2, "build_s": 0.07, "total_s": 0.49,
           "rss_mib": 177.5, "readiness_flip_apply_s": 0.002, "services_answering": 2,
           "left_behind": []}  # fmt: skip
    data: dict[str, Any] = {
        "schema": "harness.local_scale/v1",
        "benchmark": "local-cluster-scale",
        "goals": {"total_s": 20.0, "rss_mib": 256.0},
        "results": [one],
    }
    return {**data, "several_nodes": several} if several else data


def scale_tables(directory: Path, data: dict[str, Any]) -> list[Any]:
    directory.mkdir()
    (directory / "local_scale.json").write_text(json.dumps(data))
    sections, malformed = build_sections(load_sources([directory]))
    assert "local_scale.json" not in malformed
    section = next(s for s in sections if s.title == "Scale and speed")
    return [t for t in section.tables if "local_scale.json" in t.title]


def test_the_several_nodes_figures_have_a_table_with_their_goals(tmp_path: Path) -> None:
    single, several = scale_tables(tmp_path / "run", local_scale(SEVERAL))
    assert single.title.startswith("Local cluster at scale")
    assert several.title == (
        "Several nodes at scale (local_scale.json); goals: total < 30.0 s, RSS < 512.0 MiB"
    )
    assert several.rows == (
        ("iptables", "3", "300", "100", "NodePort", "2.10", "7.03", "9.43", "156.4", "100", "0",
         "yes"),
    )  # fmt: skip


def test_a_file_without_them_renders_one_table(tmp_path: Path) -> None:
    (single,) = scale_tables(tmp_path / "run", local_scale(None))
    assert single.title.startswith("Local cluster at scale")
