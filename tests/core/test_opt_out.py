"""Opt-out labels (I13): a Service labelled `service.kubernetes.io/service-proxy-name` or
`service.kubernetes.io/headless` keeps its EndpointSlices but no default proxy programs it;
removing the label programs it again. Model, event, checks, proxies' filter, protocol, kube
mapping, generation and the feature, each without a network namespace."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.checks.rules import check_exact_balance, reachability_mismatch
from harness.checks.traffic import OPT_OUT_PART, check_reject
from harness.errors import InvalidEvent, UsageError
from harness.events import (
    CreateService,
    Event,
    Probe,
    Scale,
    SetServiceLabel,
    apply_all,
    event_from_json,
)
from harness.features import CORE_FEATURES, FEATURES, attribute_failure
from harness.kube.objects import Placement, service_manifest, service_patch
from harness.model import labels_of
from harness.model.endpoints import expect, why_unusable
from harness.model.objects import (
    HEADLESS_LABEL,
    SERVICE_PROXY_NAME_LABEL,
    Backend,
    Service,
    opt_out_label,
)
from harness.proxies.base import NodeContext, TrackingProxy
from harness.proxies.mutants import IgnoresOptOutProxy
from harness.proxies.protocol import check_request, service_from_json, service_json
from harness.proxies.sdk import Session
from harness.recipes import opted_out
from harness.runner import replay
from harness.strategies import EventSpace, draw_event
from harness.targets.model import ModelTarget
from harness.traffic import ErrorKind, Outcome, Reachability, TrafficRequest, TrafficSample

WEB = labels_of({"app": "web"})
START: list[Event] = [CreateService("svc-a", WEB), Scale("web", 2)]
LABEL = SetServiceLabel("svc-a", SERVICE_PROXY_NAME_LABEL, "other-proxy")
UNLABEL = SetServiceLabel("svc-a", SERVICE_PROXY_NAME_LABEL, None)


def _sample(*outcomes: Outcome) -> TrafficSample:
    return TrafficSample(TrafficRequest("svc-a", "client-1"), outcomes, 0.0, 1.0)


# -- the model ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", [SERVICE_PROXY_NAME_LABEL, HEADLESS_LABEL])
def test_a_labelled_service_keeps_its_slices_but_nothing_is_usable(key: str) -> None:
    state = apply_all([*START, SetServiceLabel("svc-a", key, "x")])
    expected = expect(state, "svc-a", "http")
    assert expected.opted_out == f"{key}=x"
    assert expected.drops and not expected.usable
    assert len(expected.slices[0].endpoints) == 2  # the controller still publishes them
    assert "no default proxy programs it" in why_unusable(state, "svc-a", Backend("web-0", "u1"))


def test_removing_the_label_programs_the_service_again() -> None:
    before = expect(apply_all(START), "svc-a", "http")
    after = expect(apply_all([*START, LABEL, UNLABEL]), "svc-a", "http")
    assert after == before and after.opted_out is None and len(after.usable) == 2


def test_the_event_round_trips_and_refuses_other_keys() -> None:
    for event in (LABEL, UNLABEL):
        assert event_from_json(event.to_json()) == event
    with pytest.raises(InvalidEvent, match="not modelled"):
        apply_all([*START, SetServiceLabel("svc-a", "example.com/team", "x")])
    with pytest.raises(UsageError, match="value"):
        event_from_json({**LABEL.to_json(), "value": "not a label value!"})


# -- the checks -----------------------------------------------------------------------------------
def test_the_opt_out_part_passes_timeouts_and_fails_refusals_and_answers() -> None:
    label = f"{HEADLESS_LABEL}=true"
    timeout = Outcome(None, ErrorKind.TIMEOUT, 1000.0, 0)
    good = check_reject("svc-a", set(), _sample(timeout, timeout), True, label)
    assert good.holds and good.evidence["part"] == OPT_OUT_PART
    refused = check_reject(
        "svc-a", set(), _sample(Outcome(None, ErrorKind.REFUSED, 1.0, 0)), True, label
    )
    assert not refused.holds and "a refusal" in refused.message and label in refused.message
    answered = check_reject("svc-a", set(), _sample(Outcome(Backend("web-0", "u1"), None, 1, 0)))
    assert not answered.holds  # (without the label: an answer is wrong for an empty Service)
    forwarded = check_reject(
        "svc-a", set(), _sample(Outcome(Backend("web-0", "u1"), None, 1.0, 0)), True, label
    )
    assert not forwarded.holds and "web-0/u1" in forwarded.message


def test_the_rule_oracle_wants_no_rules_for_an_opted_out_service() -> None:
    label = f"{SERVICE_PROXY_NAME_LABEL}=other"
    untouched = Reachability(rejects=False, detail="ACCEPT with probability 1")
    assert reachability_mismatch(set(), untouched, True, label) is None
    programmed = Reachability(False, {Backend("web-0", "u1"): 1.0})
    assert "sends new connections to web-0/u1" in str(
        reachability_mismatch(set(), programmed, True, label)
    )
    verdict = check_exact_balance("svc-a", set(), Reachability(rejects=True), True, label)
    assert not verdict.holds and "REJECTs" in verdict.message


# -- the model target and a model that ignores the labels -----------------------------------------
class _IgnoresLabels(ModelTarget):
    def programs(self, service: Service) -> bool:
        return True


def _failed(record: dict[str, object]) -> list[dict[str, str]]:
    verdicts = record.get("verdicts")
    return verdicts if isinstance(verdicts, list) else []


def _failing(target: ModelTarget, events: list[Event]) -> set[str]:
    runner = replay(target, events)
    return {v["property"] for record in runner.history for v in _failed(record)}


def test_the_model_target_is_clean_and_a_model_ignoring_the_labels_is_caught() -> None:
    events = [*START, LABEL, Probe("svc-a"), UNLABEL]
    assert _failing(ModelTarget(), events) == set()
    assert {"reject-when-empty", "no-stale-traffic"} <= _failing(_IgnoresLabels(), events)


# -- the proxies' one filter, the SDK and the protocol --------------------------------------------
class _Recording(TrackingProxy):
    name: ClassVar[str] = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.programmed: list[set[str]] = []

    def program(self, services: Mapping[str, Service], changed: set[str]) -> None:
        self.programmed.append(set(services))


class _RecordingMutant(_Recording):
    honours_opt_out = IgnoresOptOutProxy.honours_opt_out


def _labelled(value: str | None = "other") -> Service:
    labels = labels_of({SERVICE_PROXY_NAME_LABEL: value}) if value else ()
    return Service("svc-a", "10.96.0.10", WEB, labels=labels)


@pytest.mark.parametrize(
    ("proxy_class", "programs"), [(_Recording, False), (_RecordingMutant, True)]
)
def test_tracking_proxies_leave_labelled_services_out_and_the_mutant_does_not(
    proxy_class: type[_Recording], programs: bool
) -> None:
    proxy = proxy_class()
    proxy.on_service_add(Service("svc-b", "10.96.0.11", WEB))
    proxy.on_service_add(_labelled())
    proxy.sync()
    proxy.on_service_update(_labelled(), _labelled(None))
    proxy.sync()
    assert proxy.programmed == [{"svc-b", "svc-a"} if programs else {"svc-b"}, {"svc-a", "svc-b"}]


def test_the_protocol_carries_labels_only_when_there_are_some() -> None:
    assert "labels" not in service_json(_labelled(None))
    message = service_json(_labelled())
    check_request({"type": "service_add", "seq": 1, "service": message})
    assert opt_out_label(service_from_json(message)) == f"{SERVICE_PROXY_NAME_LABEL}=other"


@pytest.mark.parametrize("honours", [True, False])
def test_the_sdk_leaves_opted_out_services_out_by_default(honours: bool) -> None:
    session = Session(lambda ports: None, honours_opt_out=honours)
    session.node = _node()
    session.services = {"default/svc-a": _labelled(), "default/svc-b": _labelled(None)}
    wanted = {"default/svc-b"} | ({"default/svc-a"} if not honours else set())
    assert {port.service for port in session.desired()} == wanted


def _node() -> NodeContext:
    return NodeContext("node-1", "netns", "prefix", Path("/nonexistent"))


# -- the kube target's mapping --------------------------------------------------------------------
def test_the_label_is_set_and_removed_on_the_service_object() -> None:
    placement = Placement(namespace="ns", run="r")
    manifest = service_manifest(_labelled(), placement)
    assert manifest["metadata"]["labels"][SERVICE_PROXY_NAME_LABEL] == "other"
    assert service_patch(_labelled(None), _labelled()) == {
        "metadata": {"labels": {SERVICE_PROXY_NAME_LABEL: "other"}}
    }
    assert service_patch(_labelled(), _labelled(None)) == {
        "metadata": {"labels": {SERVICE_PROXY_NAME_LABEL: None}}
    }


# -- generation and the feature -------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_an_implementation_without_the_feature_never_gets_the_event(data: st.DataObject) -> None:
    state = apply_all(START)
    without = EventSpace().for_features(CORE_FEATURES)
    with_it = EventSpace().for_features(CORE_FEATURES | {"opt-out-labels"})
    assert not opted_out(data, state, without)  # nor does the recipe draw it
    for _ in range(5):
        event = draw_event(data, state, without, {"set_service_label", "probe"})
        assert not isinstance(event, SetServiceLabel)
    drawn = draw_event(data, state, with_it, {"set_service_label"})
    assert isinstance(drawn, SetServiceLabel) and drawn.value is not None  # always a change


def test_the_feature_is_judged_and_a_failure_with_the_event_counts_against_it() -> None:
    feature = FEATURES["opt-out-labels"]
    assert feature.properties and set(feature.states) == {"opted-out", "opt-out-removed"}
    assert "opt-out-labels" in attribute_failure("reject-when-empty", [*START, LABEL])
    assert "opt-out-labels" not in attribute_failure("reject-when-empty", START)
