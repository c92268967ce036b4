"""Conformance profiles (harness/features.py): declarations, per-feature verdicts, the report
`harness run` writes (checked against harness/schemas/conformance-report.json) and the matrix
`harness report` draws from it."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from harness.cli import main
from harness.conformance import PropertyResult, Status, SuiteResult, options_for, run_target
from harness.errors import UsageError
from harness.events import CreateService, Probe, SetTrafficPolicy
from harness.features import (
    ALL_FEATURES,
    CORE_FEATURES,
    FEATURES,
    INTERNAL_TRAFFIC_POLICY,
    NOT_SUPPORTED,
    NOT_TESTED,
    FeatureStatus,
    PropertyOutcome,
    attribute_failure,
    declared_features,
    judge_features,
    unsupported_properties,
)
from harness.model.objects import TrafficPolicy
from harness.profiles import PROFILES
from harness.proxies.iptables import IptablesProxy
from harness.proxies.userspace import UserspaceProxy
from harness.reporting.sections import build_sections
from harness.reporting.sources import load_sources
from harness.reporting.tables import feature_matrix
from harness.results import (
    RunReport,
    conformance_path,
    conformance_problem,
    conformance_report,
    read_conformance,
)
from harness.strategies import EventSpace
from harness.targets.base import target_features
from harness.targets.model import ModelTarget
from harness.targets.mutants import LocalFallsBackToCluster

LOCAL_FAILURE = (
    CreateService("web", (("app", "web"),), internal_traffic_policy=TrafficPolicy.LOCAL),
    Probe("web"),
)
PLAIN_FAILURE = (CreateService("web", (("app", "web"),)), Probe("web"))
WITH_LOCAL = CORE_FEATURES | {"internal-traffic-policy"}


def statuses(results: Any) -> dict[str, FeatureStatus]:
    return {r.feature.name: r.status for r in results}


# -- declarations ---------------------------------------------------------------------------------
def test_every_named_feature_is_core_or_extended_and_core_is_the_issues_list() -> None:
    assert {f.profile for f in FEATURES.values()} == {"core", "extended"}
    assert {
        "clusterip-tcp",
        "endpoints",
        "fairness",
        "session-affinity",
        "reject-when-empty",
    } == CORE_FEATURES
    assert {"node-port", "load-balancer", "udp", "sctp", "multi-port"} <= ALL_FEATURES


def test_no_declaration_means_core_only() -> None:
    assert declared_features(None, "proxy 'x'") == CORE_FEATURES


@pytest.mark.parametrize(
    ("names", "named"),
    [
        ([*CORE_FEATURES, "teleportation"], "unknown feature(s) teleportation"),
        (["clusterip-tcp"], "omits core feature(s) endpoints, fairness"),
        ("clusterip-tcp", "must be a list"),
    ],
)
def test_a_bad_declaration_is_one_usage_line(names: object, named: str) -> None:
    with pytest.raises(UsageError) as raised:
        declared_features(names, "proxy 'x'")
    assert named in str(raised.value) and "proxy 'x'" in str(raised.value)
    assert "\n" not in str(raised.value)


class _Plugin:
    name: ClassVar[str] = "plugin"


class _BadPlugin:
    name: ClassVar[str] = "bad"
    features: ClassVar[frozenset[str]] = frozenset({"clusterip-tcp"})


class _Holder:
    name = "local:x"

    def __init__(self, proxy: object) -> None:
        self.proxy = proxy


def test_targets_declare_through_their_proxy_or_are_judged_on_everything() -> None:
    assert target_features(_Holder(_Plugin())) == (CORE_FEATURES, "core only (none declared)")
    harness_proxies = WITH_LOCAL | {
        "long-lived-connections",
        "hairpin",
        "opt-out-labels",
        "multi-port",
        "node-port",
    }
    # relaying proxies show pods their own address, and relay TCP only
    # kernel-rule proxies also program ingress IPs and externalTrafficPolicy
    kernel = harness_proxies | {"source-ip", "udp", "external-traffic-policy"}
    kernel |= {"load-balancer"}
    kernel |= {"health-check-node-port"}  # and serve healthCheckNodePorts
    kernel |= {"external-ips"}  # and program externalIPs
    kernel |= {"topology"}  # and honour zone hints (trafficDistribution)
    kernel |= {"sctp"}  # and translate SCTP (where the kernel tracks it)
    assert target_features(_Holder(IptablesProxy.__new__(IptablesProxy)))[0] == kernel
    assert target_features(_Holder(UserspaceProxy.__new__(UserspaceProxy)))[0] == harness_proxies
    assert target_features(object())[0] == ALL_FEATURES
    with pytest.raises(UsageError, match="omits core"):
        target_features(_Holder(_BadPlugin()))


# -- per-feature verdicts -------------------------------------------------------------------------
JUDGED = ("no-stale-traffic", "availability", "programming-latency", "endpoints", "fairness",
          "affinity", "reject-when-empty")  # fmt: skip
PASSING = [PropertyOutcome(name, "passed") for name in JUDGED]
EVERYTHING_CHECKED = {"usable-0": 3, "local-no-local-endpoints": 2, "affinity-backend-removed": 1}


def _failing(counterexample: tuple[Any, ...]) -> list[PropertyOutcome]:
    rest = [o for o in PASSING if o.name != "reject-when-empty"]
    return [*rest, PropertyOutcome("reject-when-empty", "failed", counterexample)]


def test_a_failure_under_local_policy_counts_against_internal_traffic_policy() -> None:
    assert attribute_failure("reject-when-empty", LOCAL_FAILURE) == {"internal-traffic-policy"}
    assert attribute_failure("reject-when-empty", PLAIN_FAILURE) == {"reject-when-empty"}
    set_later = (*PLAIN_FAILURE, SetTrafficPolicy("web", TrafficPolicy.LOCAL))
    assert attribute_failure("reject-when-empty", set_later) == {"internal-traffic-policy"}


def test_a_candidate_declaring_a_feature_it_fails_shows_failed() -> None:
    judged = statuses(judge_features(_failing(LOCAL_FAILURE), WITH_LOCAL, EVERYTHING_CHECKED))
    assert judged["internal-traffic-policy"] == FeatureStatus.FAILED
    assert judged["reject-when-empty"] == FeatureStatus.SKIPPED  # never passed on a failure
    assert judged["clusterip-tcp"] == FeatureStatus.PASSED


def test_an_undeclared_extended_feature_is_unsupported_and_its_failure_discounted() -> None:
    results = judge_features(_failing(LOCAL_FAILURE), CORE_FEATURES, EVERYTHING_CHECKED)
    judged = statuses(results)
    assert judged["internal-traffic-policy"] == FeatureStatus.UNSUPPORTED
    assert FeatureStatus.FAILED not in judged.values()
    local = next(r for r in results if r.feature.name == "internal-traffic-policy")
    assert local.discounted == ("reject-when-empty",) and NOT_SUPPORTED in local.reason


def test_features_no_property_checks_are_not_tested_never_passed() -> None:
    results = judge_features(PASSING, ALL_FEATURES, EVERYTHING_CHECKED)
    untested = {r.feature.name for r in results if r.status == FeatureStatus.NOT_TESTED}
    assert "sctp" not in untested and "topology" not in untested  # both judged now
    assert all(r.reason == NOT_TESTED for r in results if r.feature.name in untested)
    assert statuses(results)["internal-traffic-policy"] == FeatureStatus.PASSED


def test_a_feature_whose_states_were_never_checked_is_skipped_not_passed() -> None:
    judged = statuses(judge_features(PASSING, WITH_LOCAL, {"usable-0": 1}))
    assert judged["session-affinity"] == FeatureStatus.SKIPPED
    assert judged["internal-traffic-policy"] == FeatureStatus.SKIPPED
    assert judged["reject-when-empty"] == FeatureStatus.PASSED


# -- the report -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_suite(tmp_path_factory: pytest.TempPathFactory) -> SuiteResult:
    target = ModelTarget()
    options = options_for(
        target,
        seed=5,
        profile=PROFILES["quick"],
        examples=3,
        steps=6,
        failures_dir=tmp_path_factory.mktemp("failures"),
    )
    return run_target(target, options)


def test_a_candidate_failing_a_declared_feature_is_reported_failed_and_valid(
    model_suite: SuiteResult,
) -> None:
    failure = PropertyResult("reject-when-empty", Status.FAILED, "refused", list(LOCAL_FAILURE))
    rest = [r for r in model_suite.results if r.name != "reject-when-empty"]
    suite = replace(model_suite, results=[*rest, failure], target_name="local:candidate")
    report = RunReport(suite, "quick", 1.0)
    declared = conformance_report(report, WITH_LOCAL, "hello reply")
    undeclared = conformance_report(report, CORE_FEATURES, "core only (none in hello)")
    for document in (declared, undeclared):
        assert conformance_problem(yaml.safe_load(yaml.safe_dump(document))) is None
    extended = {p["name"]: p for p in declared["profiles"]}["extended"]
    local = {f["name"]: f for f in extended["features"]}["internal-traffic-policy"]
    assert local["status"] == "failed" and local["properties"]["reject-when-empty"] == "failed"
    assert extended["result"] == "failed"
    extended = {p["name"]: p for p in undeclared["profiles"]}["extended"]
    assert "internal-traffic-policy" in extended["unsupportedFeatures"]
    local = {f["name"]: f for f in extended["features"]}["internal-traffic-policy"]
    assert local["status"] == "unsupported" and local["discountedFailures"] == ["reject-when-empty"]


def test_a_broken_report_is_named_by_the_schema(model_suite: SuiteResult) -> None:
    document = conformance_report(RunReport(model_suite, "quick", 1.0), ALL_FEATURES, "x")
    document["profiles"][0]["features"][0]["status"] = "sort of"
    assert "profiles/0/features/0/status" in str(conformance_problem(document))


def test_the_default_report_path_sits_beside_the_results() -> None:
    assert conformance_path(Path("d/results-local.json")) == Path("d/conformance-local.yaml")
    assert conformance_path(Path("d/run.json")) == Path("d/conformance-run.yaml")


def _run(tmp_path: Path, target: str, *extra: str) -> int:
    size = ("--profile", "quick", "--examples", "2", "--steps", "4", "--seed", "3")
    return main(["run", "--target", target, *size, "--failures-dir", str(tmp_path / "f"), *extra])


def test_harness_run_on_the_model_writes_a_valid_report_beside_the_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(tmp_path, "model", "--results", str(tmp_path / "results-model.json"))
    assert code == 0, capsys.readouterr().err
    document = read_conformance(tmp_path / "conformance-model.yaml")  # checks the schema
    assert document["implementation"]["name"] == "model"
    assert document["harnessVersion"] and [p["name"] for p in document["profiles"]] == [
        "core",
        "extended",
    ]
    extended = document["profiles"][1]
    sctp = {f["name"]: f for f in extended["features"]}["sctp"]
    results = json.loads((tmp_path / "results-model.json").read_text())
    # the model serves SCTP, but a feature passes only on evidence: its state checked
    evidence = results["coverage"]["sctp-reached"]["checked"] > 0
    assert sctp["status"] == ("passed" if evidence else "skipped")
    if not evidence:  # this tiny run drew no SCTP Service
        assert "never checked its states (sctp-reached)" in sctp["reason"]


def test_a_bad_report_path_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results.json"
    code = _run(tmp_path, "model", "--results", str(results),
                "--conformance-report", str(tmp_path / "missing" / "c.yaml"))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "--conformance-report" in err and "does not exist" in err
    assert not results.exists() and not list(tmp_path.glob("*.yaml"))


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_harness_run_on_a_local_proxy_writes_a_valid_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "userspace.yaml"
    code = _run(tmp_path, "local:userspace", "--conformance-report", str(report))
    assert code == 0, capsys.readouterr().err
    document = read_conformance(report)
    assert document["implementation"]["name"] == "local:userspace"
    assert document["implementation"]["featuresDeclaredBy"] == "proxy class"
    assert "internal-traffic-policy" in document["profiles"][1]["supportedFeatures"]
    assert document["implementation"]["version"].startswith("userspace")


# -- the matrix -----------------------------------------------------------------------------------
def test_harness_report_draws_every_implementation_against_every_feature(
    model_suite: SuiteResult, tmp_path: Path
) -> None:
    model = conformance_report(RunReport(model_suite, "quick", 1.0), ALL_FEATURES, "x")
    candidate_suite = replace(model_suite, target_name="local:candidate")
    candidate = conformance_report(RunReport(candidate_suite, "quick", 1.0), CORE_FEATURES, "y")
    for name, document in (("conformance-model.yaml", model), ("conformance-c.yaml", candidate)):
        (tmp_path / name).write_text(yaml.safe_dump(document, sort_keys=False))
    sources = load_sources([tmp_path])
    assert set(sources.conformance) == {"conformance-model.yaml", "conformance-c.yaml"}
    table = feature_matrix(sources.conformance)
    assert table is not None
    assert table.headers == ("feature (profile)", "local:candidate", "model")
    rows = {row[0]: row[1:] for row in table.rows}
    assert rows["internal-traffic-policy (extended)"][0] == "unsupported"
    assert rows["sctp (extended)"][0] == "unsupported"
    assert table.rows[0][0].endswith("(core)") and len(rows) == len(FEATURES)
    sections, malformed = build_sections(sources)
    assert malformed == {}
    assert any(t.title.startswith("Conformance profiles") for t in sections[0].tables)


def test_a_malformed_report_is_named_and_the_matrix_skips_it(tmp_path: Path) -> None:
    (tmp_path / "conformance-bad.yaml").write_text("apiVersion: harness.conformance/v1\nkind: x\n")
    sources = load_sources([tmp_path])
    assert "conformance-bad.yaml" in sources.malformed and not sources.conformance
    assert feature_matrix(sources.conformance) is None


def test_every_property_a_feature_names_is_one_the_harness_checks() -> None:
    """Feature definitions name properties by string (proxies import harness.features without
    the checks); a renamed or misspelt property would make a feature never judged."""
    from harness.checks import PROPERTIES
    from harness.features import FEATURES

    named = {prop for feature in FEATURES.values() for prop in feature.properties}
    assert named and named <= set(PROPERTIES), named - set(PROPERTIES)


def test_a_proxy_declaring_its_features_does_not_import_the_checks() -> None:
    """The loopback target runs under a Python without the harness's scientific dependencies
    (tests/local/test_loopback.py): importing a proxy must not import harness.checks."""
    import subprocess
    import sys

    script = "import sys, harness.proxies.userspace; print('harness.checks' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


# -- the search asks only for what is declared ---------------------------------------------------
class _CoreOnlyLocalFallback(LocalFallsBackToCluster):
    """Breaks internalTrafficPolicy Local, and declares only the core features."""

    def features(self) -> list[str]:
        return sorted(CORE_FEATURES)


def _local_policy_run(target: ModelTarget, tmp_path: Path) -> SuiteResult:
    options = options_for(
        target, seed=11, profile=PROFILES["quick"], examples=60, failures_dir=tmp_path
    )
    return run_target(target, options)


def test_an_undeclared_feature_is_never_asked_for_so_its_bug_does_not_fail_the_run(
    tmp_path: Path,
) -> None:
    declared = _local_policy_run(LocalFallsBackToCluster(), tmp_path / "declared")
    # the bug is findable: a property judging internalTrafficPolicy fails
    judging = set(FEATURES[INTERNAL_TRAFFIC_POLICY].properties)
    assert judging & {r.name for r in declared.failed}, [r.name for r in declared.failed]
    suite = _local_policy_run(_CoreOnlyLocalFallback(), tmp_path / "core-only")
    assert suite.failed == []
    report = RunReport(suite, "quick", 1.0)
    assert report.exit_code == 0
    assert {"local-no-local-endpoints", "local-only-terminating"} <= suite.uncheckable
    skipped = {r.name: r.message for r in suite.results if r.status == Status.SKIPPED}
    assert skipped.get("long-lived-connections") == NOT_SUPPORTED


def test_a_space_for_core_features_draws_no_local_policy() -> None:
    space = EventSpace().for_features(CORE_FEATURES)
    assert space.policy_choices == (TrafficPolicy.CLUSTER,) * 3
    assert replace(space, policies=(TrafficPolicy.LOCAL,)).policy_choices == (
        TrafficPolicy.CLUSTER,
    )
    assert EventSpace().for_features(WITH_LOCAL).policy_choices == EventSpace().policies


def test_source_ip_and_hairpin_are_judged_and_never_passed_unsupported() -> None:
    passing = [
        *PASSING,
        PropertyOutcome("hairpin", "passed"),
        PropertyOutcome("source-ip", "passed"),
    ]
    checked = {**EVERYTHING_CHECKED, "hairpin": 1, "source-ip-checked": 1}
    relaying = WITH_LOCAL | {"hairpin"}
    judged = statuses(judge_features(passing, relaying, checked))
    assert judged["hairpin"] == FeatureStatus.PASSED
    assert judged["source-ip"] == FeatureStatus.UNSUPPORTED
    assert "source-ip" in unsupported_properties(relaying)
    unchecked = statuses(judge_features(passing, ALL_FEATURES, EVERYTHING_CHECKED))
    assert unchecked["source-ip"] == FeatureStatus.SKIPPED
