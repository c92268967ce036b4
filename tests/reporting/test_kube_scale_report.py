"""The report reads kube_scale.json (bench/test_kube_scale.py, issue 13: "harness report does
not read kube_scale.json"): a table of setup and teardown through the API beside the local
cluster, with the ratio and its goal, in "Scale and speed"; nothing at all when the file is
absent (it is optional, so earlier reports render again byte for byte); one note when malformed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.reporting.sections import build_sections
from harness.reporting.sources import OPTIONAL_FILES, load_sources


def kube_scale_json(local: object = None) -> dict[str, Any]:
    """The shape bench/test_kube_scale.py writes (its `figures`, schema and stamps added)."""
    side = {"pods": 10, "services": 2, "setup_s": 1.25, "teardown_s": 0.5, "total_s": 1.75}
    return {
        "schema": "harness.kube_scale/v1",
        "measured_at": "2026-11-30T05:00:00Z",
        "host": {"name": "vm", "cpus": 2},
        "benchmark": "kube-scale",
        "api_server": "kmock (in-memory, not a real API server)",
        "mock_api_server": True,
        "sizes": {"pods": 10, "services": 2, "api_concurrency": 16},
        "goal": {"kube_over_local_at_most": 2.0},
        "kube": {**side, "not_seen": [], "still_there": [], "services_left": 0},
        "local": {**side, "setup_s": 0.5, "total_s": 0.875} if local is None else local,
        "kube_over_local": 2.0,
        "meets_goal": True,
    }


def scale_section(directory: Path, data: object) -> Any:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kube_scale.json").write_text(json.dumps(data))
    sections, malformed = build_sections(load_sources([directory]))
    return next(s for s in sections if s.title == "Scale and speed"), malformed


def test_the_table_sets_the_api_path_beside_the_local_cluster(tmp_path: Path) -> None:
    section, malformed = scale_section(tmp_path / "run", kube_scale_json())
    assert malformed == {}
    (table,) = [t for t in section.tables if "kube_scale.json" in t.title]
    assert "kube/local 2.00x; goal at most 2.0x" in table.title
    assert table.rows == (
        ("kube (API)", "10", "1.25", "0.50", "1.75"),
        ("local cluster", "10", "0.50", "0.50", "0.88"),
    )
    assert "API server: kmock (in-memory, not a real API server)" in section.notes


def test_a_skipped_local_side_shows_its_reason(tmp_path: Path) -> None:
    skipped = "skipped: the local cluster needs root"
    section, _ = scale_section(tmp_path / "run", kube_scale_json(local=skipped))
    (table,) = [t for t in section.tables if "kube_scale.json" in t.title]
    assert table.rows[1][:2] == ("local cluster", skipped)


def test_absent_it_is_no_part_of_the_report_and_malformed_it_is_one_note(tmp_path: Path) -> None:
    assert "kube_scale.json" in OPTIONAL_FILES
    empty = tmp_path / "empty"
    empty.mkdir()
    sections, _ = build_sections(load_sources([empty]))
    scale = next(s for s in sections if s.title == "Scale and speed")
    assert not any(
        "kube_scale.json" in text for text in [*scale.notes, *(t.title for t in scale.tables)]
    )
    broken = {**kube_scale_json(), "kube": "nothing"}
    section, malformed = scale_section(tmp_path / "broken", broken)
    assert "kube_scale.json" in malformed
    assert [n for n in section.notes if n.startswith("kube_scale.json: malformed, skipped")]
