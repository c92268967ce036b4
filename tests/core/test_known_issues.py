"""Known upstream issues: each signature matches its symptom and nothing else, the wording
follows the target's version, and a matching failure stays a failure, annotated in the summary,
the results file and JUnit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from harness.cli import main
from harness.events import CreateService, DeletePod, Event, EvictPod, Scale, SetReady
from harness.known_issues import KNOWN_ISSUES, evicted_incarnations, match, version_tuple, wording
from harness.model.objects import labels_of

SERVICE = CreateService("svc-a", labels_of({"app": "web"}))
READY_EVICTED: list[Event] = [SERVICE, Scale("web", 1), EvictPod("web-0")]
UNREADY_EVICTED: list[Event] = [
    SERVICE,
    Scale("web", 1),
    SetReady("web-0", False),
    EvictPod("web-0"),
]
BY_ID = {issue.id: issue for issue in KNOWN_ISSUES}
PHASE = "upstream behaviour, no issue filed"


def endpoints_failure(*unexpected: str) -> list[dict[str, Any]]:
    return [
        {
            "property": "endpoints",
            "holds": False,
            "message": "svc-a: EndpointSlices differ from the model",
            "evidence": {"service": "svc-a", "missing": [], "unexpected": list(unexpected)},
        }
    ]


def ids(found: list[Any]) -> list[str]:
    return [m.issue.id for m in found]


# -- kubernetes#109414 ----------------------------------------------------------------------------
def test_an_evicted_pod_still_listed_matches_109414_fixed_in_1_25() -> None:
    found = match(
        "endpoints", READY_EVICTED, endpoints_failure("web-0/u1[ready,serving](http:8080)")
    )
    assert ids(found) == ["kubernetes#109414"]
    assert found[0].text == "matches kubernetes#109414 (evicted pod listed), fixed in v1.25.0"


def test_the_same_failure_in_programming_latency_matches_through_its_quoted_rows() -> None:
    verdict = {
        "evidence": {
            "still_wrong": "svc-a: EndpointSlices differ from the model; unexpected"
            " web-0/u1[ready,serving](http:8080) (missed its deadline before)"
        }
    }
    assert ids(match("programming-latency", READY_EVICTED, [verdict])) == ["kubernetes#109414"]


@pytest.mark.parametrize(
    ("prop", "events", "unexpected"),
    [
        # the listed pod is not the evicted one
        ("endpoints", READY_EVICTED, "web-1/u2[ready,serving](http:8080)"),
        # nothing was evicted: a deleted pod still listed is another bug
        ("endpoints", [SERVICE, Scale("web", 1), DeletePod("web-0", 0)], "web-0/u1[ready](x:1)"),
        # another property, same events
        ("fairness", READY_EVICTED, "web-0/u1[ready,serving](http:8080)"),
    ],
)
def test_no_match_for_another_pod_another_cause_or_another_property(
    prop: str, events: list[Event], unexpected: str
) -> None:
    assert match(prop, events, endpoints_failure(unexpected)) == []


def test_an_evicted_pod_missing_rather_than_listed_matches_nothing() -> None:
    verdicts = [{"evidence": {"missing": ["web-0/u1[ready](http:8080)"], "unexpected": []}}]
    assert match("endpoints", READY_EVICTED, verdicts) == []


def test_counterexamples_the_model_rejects_and_odd_evidence_match_nothing() -> None:
    assert evicted_incarnations([EvictPod("nobody")]) == {}
    assert match("endpoints", [EvictPod("nobody")], endpoints_failure("nobody/u1[](x:1)")) == []
    for odd in (None, [], [{}], [{"evidence": "x"}], [{"evidence": {"unexpected": 3}}]):
        assert match("endpoints", READY_EVICTED, odd) == []


# -- the phase-blind change detection -------------------------------------------------------------
def test_an_unready_pod_evicted_and_listed_not_ready_matches_the_phase_behaviour_too() -> None:
    found = match("endpoints", UNREADY_EVICTED, endpoints_failure("web-0/u1[none](http:8080)"))
    assert ids(found) == ["kubernetes#109414", PHASE]
    assert found[1].text.endswith("not fixed upstream")
    assert "podEndpointsChanged" in BY_ID[PHASE].link


def test_the_phase_behaviour_needs_the_pod_unready_before_eviction_and_listed_not_ready() -> None:
    ready_evicted = match("endpoints", READY_EVICTED, endpoints_failure("web-0/u1[none](http:80)"))
    listed_ready = match(
        "endpoints", UNREADY_EVICTED, endpoints_failure("web-0/u1[ready](http:80)")
    )
    assert PHASE not in ids(ready_evicted) and PHASE not in ids(listed_ready)


# -- kubernetes#17359 -----------------------------------------------------------------------------
def reject_failure(*errors: str | None) -> list[dict[str, Any]]:
    outcomes = [{"error": e, "backend": "None", "latency_ms": 3000.0} for e in errors]
    return [{"evidence": {"service": "svc-a", "outcomes": outcomes}}]


def test_connections_to_an_empty_service_timing_out_match_17359() -> None:
    found = match("reject-when-empty", [SERVICE], reject_failure("timeout", "timeout"))
    assert ids(found) == ["kubernetes#17359"]


@pytest.mark.parametrize("errors", [(None,), ("timeout", None), ("reset",), ()])
def test_an_answer_a_reset_or_no_outcome_is_not_the_blackhole(errors: tuple[str | None]) -> None:
    assert match("reject-when-empty", [SERVICE], reject_failure(*errors)) == []


# -- wording by version ---------------------------------------------------------------------------
def test_a_version_at_or_after_the_fix_should_have_it() -> None:
    failure = endpoints_failure("web-0/u1[ready,serving](http:8080)")
    found = match("endpoints", READY_EVICTED, failure, {"server": "v1.30.2"})
    assert found[0].text == (
        "matches kubernetes#109414 (evicted pod listed), fixed in v1.25.0;"
        " this version (v1.30.2) should have the fix"
    )
    older = match("endpoints", READY_EVICTED, failure, {"server": "v1.24.0", "proxy": "v1.99.0"})
    assert older[0].text.endswith("fixed in v1.25.0")


def test_versions_are_read_leniently_and_unknown_ones_say_nothing() -> None:
    assert version_tuple("Kubernetes v1.24.3") == (1, 24, 3)
    assert version_tuple("1.30") == (1, 30, 0)
    assert version_tuple("unknown") is None
    assert wording(BY_ID["kubernetes#17359"], "unknown").endswith("fixed in v1.14.0")


def test_every_entry_is_complete() -> None:
    for issue in KNOWN_ISSUES:
        assert issue.title and issue.affected
        assert issue.properties if issue.signature else issue.shown_by  # matched, or says why not
        assert issue.link.startswith("https://github.com/kubernetes/kubernetes/")
        assert issue.component in ("server", "proxy")


# -- end to end -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lists_evicted_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("lists-evicted")
    code = main(
        [
            "run",
            "--target",
            "mutant:lists-evicted",
            "--profile",
            "quick",
            "--seed",
            "1",
            "--results",
            str(out / "results.json"),
            "--junit",
            str(out / "junit.xml"),
            "--failures-dir",
            str(out / "failures"),
        ]
    )
    return code, out


def test_the_lists_evicted_mutant_fails_annotated_with_109414(
    lists_evicted_run: tuple[int, Path],
) -> None:
    code, out = lists_evicted_run
    document = json.loads((out / "results.json").read_text())
    endpoints = next(p for p in document["properties"] if p["name"] == "endpoints")
    assert code == 1 and endpoints["status"] == "failed"
    assert endpoints["message"].endswith(
        "; matches kubernetes#109414 (evicted pod listed), fixed in v1.25.0"
    )
    assert [i["id"] for i in endpoints["known_issues"]] == ["kubernetes#109414"]
    assert document["schema"] == "harness.results/v3"
    assert document["versions"]["harness"]
    junit = ElementTree.parse(out / "junit.xml").getroot()
    facts = {p.get("name"): p.get("value") for p in junit.iter("property")}
    assert facts["version.harness"] == document["versions"]["harness"]
    failure = junit.find("testcase[@name='endpoints']/failure")
    assert failure is not None and "kubernetes#109414" in (failure.get("message") or "")
    assert "known issue: matches kubernetes#109414" in (failure.text or "")


# -- kubernetes#93682 and the listed-only entries -------------------------------------------------
def availability_failure(errors: dict[str, int], usable: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "property": "availability",
            "holds": False,
            "message": "svc-a: requests failed while endpoints were usable",
            "evidence": {"service": "svc-a", "errors": errors, "usable": usable},
        }
    ]


def test_refusals_while_endpoints_are_usable_match_93682_and_nothing_else_does() -> None:
    refused = availability_failure({"refused": 117}, ["web-0/u1"])
    assert ids(match("availability", READY_EVICTED, refused)) == ["kubernetes#93682"]
    mixed = availability_failure({"refused": 3, "timeout": 1}, ["web-0/u1"])
    assert ids(match("availability", READY_EVICTED, mixed)) == []
    timeouts = availability_failure({"timeout": 4}, ["web-0/u1"])
    assert ids(match("availability", READY_EVICTED, timeouts)) == []
    rules = [{"message": "svc-a: programmed rules REJECTs although 2 endpoint(s) are usable"}]
    found = match("exact-balance", READY_EVICTED, rules)
    assert ids(found) == ["kubernetes#93682"]
    assert found[0].text.endswith("closed without a linked fix")
    other = [{"message": "svc-a: programmed rules reaches the wrong endpoints; extra x"}]
    assert ids(match("exact-balance", READY_EVICTED, other)) == []


def test_every_anchored_issue_is_listed_and_listed_only_ones_never_match() -> None:
    from harness.known_issues import ANCHORED

    assert set(ANCHORED) <= set(BY_ID)
    assert len(ANCHORED) == 11  # anchors §4 entries 1-10, entry 6 with its reverse bug
    listed_only = [issue for issue in KNOWN_ISSUES if issue.signature is None]
    assert listed_only and all(issue.shown_by for issue in listed_only)
    for issue in listed_only:
        for prop in issue.properties:
            assert issue.id not in ids(match(prop, READY_EVICTED, refused_anything(prop)))


def refused_anything(prop: str) -> list[dict[str, Any]]:
    """A failing verdict of `prop` with every kind of evidence a signature might read."""
    return [
        {
            "property": prop,
            "holds": False,
            "message": "svc-a: failed",
            "evidence": {"errors": {"timeout": 1}, "usable": ["web-0/u1"], "outcomes": []},
        }
    ]


def test_harness_known_issues_lists_every_issue_with_its_link(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["known-issues"]) == 0
    shown = capsys.readouterr().out
    for issue in KNOWN_ISSUES:
        assert issue.id in shown and issue.link in shown
    assert "not matched automatically" in shown
