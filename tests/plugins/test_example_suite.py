"""CI runs the conformance suite on the example candidate proxy (docs/candidate-proxy.md), the
way a user would: `harness run --target local:external --proxy-command '...'`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.features import NOT_SUPPORTED

pytestmark = pytest.mark.netns

EXAMPLE = Path(__file__).parents[2] / "examples" / "candidate-proxy" / "proxy.py"


def test_the_example_proxy_passes_the_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results.json"
    code = main(
        [
            "run",
            "--target",
            "local:external",
            "--proxy-command",
            f"{sys.executable} {EXAMPLE}",
            "--examples",
            "5",
            "--steps",
            "8",
            "--seed",
            "3",
            "--results",
            str(results),
            "--failures-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "exact-balance" in out and "skipped" in out  # a userspace proxy shows no rules
    report = json.loads(results.read_text())
    statuses = {p["name"]: p["status"] for p in report["properties"]}
    assert statuses.pop("exact-balance") == "skipped"
    # the example declares the core features only: what judges only extended ones is skipped
    undeclared = {p["name"] for p in report["properties"] if NOT_SUPPORTED in p.get("message", "")}
    assert "long-lived-connections" in undeclared
    for name in undeclared:
        assert statuses.pop(name) == "skipped"
    assert set(statuses.values()) == {"passed"} and "proxy-contract" in statuses, statuses
    assert report["search"]["examples"] == 5 and report["outcome"] == "passed"
