"""Versions: what each target knows of its versions, probed without side effects, and how they
reach the summary, the results file, JUnit and the report."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from harness import __version__
from harness.conformance import PropertyResult, Status, SuiteOptions, SuiteResult
from harness.proxies.mutants import WrongProbabilityProxy
from harness.proxies.userspace import UserspaceProxy
from harness.reporting.tables import versions_line
from harness.results import RunReport, print_summary, results_json, write_junit
from harness.search import SearchStats
from harness.targets.base import target_versions
from harness.targets.model import ModelTarget
from harness.versions import (
    UNKNOWN,
    proxy_command_version,
    proxy_tool,
    proxy_version,
    tool_version,
)


class _Declares:
    name = "external"
    declared_version: str | None = None


def test_a_target_without_the_accessor_or_with_a_failing_one_gives_the_harness_alone() -> None:
    class Failing:
        def versions(self) -> dict[str, str]:
            raise RuntimeError("boom")

    assert target_versions(ModelTarget()) == {"harness": __version__}
    assert target_versions(Failing()) == {"harness": __version__}


def test_tool_versions_are_one_line_and_unknown_when_missing_or_failing() -> None:
    assert tool_version(["svc-lb-no-such-binary", "--version"]) == UNKNOWN
    assert tool_version(["false"]) == UNKNOWN
    assert tool_version(["echo", "v9.9.9", "extra"]) == "v9.9.9 extra"


def test_a_proxy_reports_its_tool_its_declared_version_or_the_harness() -> None:
    assert proxy_tool(WrongProbabilityProxy()) == ("iptables", "--version")  # a mutant's base
    assert proxy_version(UserspaceProxy()) == f"userspace: harness {__version__}"
    candidate = _Declares()
    assert proxy_version(candidate) == "external: unknown (not declared in hello)"
    candidate.declared_version = "myproxy 0.3.1"
    assert proxy_version(candidate) == "external: myproxy 0.3.1"


def test_only_a_kube_proxy_binary_is_asked_for_its_version(tmp_path: Path) -> None:
    fake = tmp_path / "kube-proxy"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Kubernetes v1.24.0"\n')
    fake.chmod(0o755)
    command = f"ip route add 10.96.0.0/16 dev lo; {fake} --config x.yaml"
    assert proxy_command_version(command) == "Kubernetes v1.24.0"
    assert proxy_command_version("my-proxy --serve").startswith(f"{UNKNOWN} (not kube-proxy")
    installed = Path(sys.executable).parent / "harness-kube-proxy"  # this environment's
    standin = proxy_command_version(f"{installed} --kubeconfig k --proxy-mode nftables")
    assert "stand-in for kube-proxy" in standin and not standin.startswith(UNKNOWN)
    assert proxy_command_version(None) == f"{UNKNOWN} (no --proxy-command)"
    assert proxy_command_version("echo 'unclosed").startswith(f"{UNKNOWN} (the proxy command")


def _report(versions: dict[str, str]) -> RunReport:
    suite = SuiteResult(
        [PropertyResult("endpoints", Status.PASSED)],
        SearchStats(),
        SuiteOptions(),
        "kube",
        versions=versions,
    )
    return RunReport(suite, "quick", 1.0)


VERSIONS = {"harness": "0.1.0", "server": "v1.30.2", "proxy": "Kubernetes v1.30.2"}


def test_versions_reach_the_summary_the_results_file_and_junit(tmp_path: Path) -> None:
    report = _report(VERSIONS)
    out = io.StringIO()
    print_summary(report, out)
    assert "versions: harness 0.1.0, server v1.30.2, proxy Kubernetes v1.30.2\n" in out.getvalue()
    document = results_json(report)
    assert document["versions"] == VERSIONS
    assert document["properties"][0]["known_issues"] == []
    write_junit(report, tmp_path / "junit.xml")
    text = (tmp_path / "junit.xml").read_text()
    assert '<property name="version.server" value="v1.30.2" />' in text


def test_the_report_has_a_versions_line_per_results_file() -> None:
    document = results_json(_report(VERSIONS))
    document["properties"][0]["known_issues"] = [
        {"text": "matches kubernetes#109414 (evicted pod listed)", "link": "https://x"}
    ]
    assert versions_line("results-kube.json", document) == (
        "results-kube.json: versions harness 0.1.0, server v1.30.2, proxy Kubernetes v1.30.2;"
        " endpoints failed, matches kubernetes#109414 (evicted pod listed) (https://x)"
    )
    old = {"schema": "harness.results/v2", "properties": []}
    assert versions_line("results-old.json", old) is None  # published reports render as before
