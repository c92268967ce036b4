"""Unobserved changes (issue 12 item 4, Sieve's unobserved-state perturbation) in the model, the
event vocabulary and the search: the event holds 2 to 4 changes of the cluster and nothing else,
round-trips through JSON and refuses bad input in one line; the model applies its changes in
order; the search draws only valid ones, and never for a target that cannot hide changes from
its proxy (a real cluster's kube-proxy watches the API server itself)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from harness.conformance import options_for, uncheckable_features
from harness.errors import InvalidEvent, UsageError
from harness.events import (
    CreateService,
    DeleteService,
    Probe,
    RestartProxy,
    Scale,
    UnobservedChanges,
    apply_all,
    event_from_json,
    load_sequence,
)
from harness.model.objects import labels_of
from harness.profiles import PROFILES
from harness.registry import TargetOptions
from harness.strategies import GENERATORS, EventSpace, event_sequences
from harness.targets.kube import KubeTarget
from harness.targets.model import ModelTarget

WEB = labels_of({"app": "web"})
MOVED = UnobservedChanges(
    (DeleteService("svc-a"), CreateService("svc-b", WEB), CreateService("svc-a", WEB))
)


def test_the_changes_apply_in_order_and_round_trip() -> None:
    before = apply_all([CreateService("svc-a", WEB), Scale("web", 2)])
    after = MOVED.apply(before)
    assert after == apply_all(MOVED.changes, before)
    assert after.services["svc-b"].cluster_ip == before.services["svc-a"].cluster_ip
    assert after.services["svc-a"].cluster_ip != before.services["svc-a"].cluster_ip
    assert event_from_json(json.loads(json.dumps(MOVED.to_json()))) == MOVED
    assert str(MOVED).startswith("unobserved-changes [delete-service service=svc-a; create-")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ((Scale("web", 1),), "holds 1 changes: it must hold 2 to 4"),
        ((Scale("web", 1), RestartProxy()), "cannot hold restart-proxy"),
        ((Scale("web", 1), Probe("svc-a")), "cannot hold probe"),
        ((Scale("web", 1), MOVED), "cannot hold unobserved-changes"),
    ],
)
def test_only_two_to_four_changes_of_the_cluster(changes: tuple, problem: str) -> None:
    with pytest.raises(InvalidEvent, match=problem):
        UnobservedChanges(changes).apply(apply_all([CreateService("svc-a", WEB)]))


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ("all of them", "changes must be a list of at most 4 events, got 'all of them'"),
        ([{"kind": "scale"}] * 5, "changes must be a list of at most 4 events"),
        ([{"kind": "nope"}, {"kind": "nope"}], r"changes\[0\] has unknown kind 'nope'"),
    ],
)
def test_a_bad_sequence_file_is_one_line(tmp_path: Path, changes: object, problem: str) -> None:
    path = tmp_path / "seq.json"
    event = {"kind": "unobserved-changes", "changes": changes}
    path.write_text(json.dumps({"schema": "harness.sequence/v1", "events": [event]}))
    with pytest.raises(UsageError, match=problem) as raised:
        load_sequence(path)
    assert "\n" not in str(raised.value)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(event_sequences(max_events=20))
def test_every_drawn_one_applies(events: list) -> None:
    apply_all(events)  # raises InvalidEvent if the search drew one that does not


def test_never_drawn_where_changes_cannot_be_hidden_from_the_proxy() -> None:
    state = apply_all([CreateService("svc-a", WEB), Scale("web", 2)])
    assert GENERATORS["unobserved_changes"].applies(state, EventSpace())
    assert not GENERATORS["unobserved_changes"].applies(state, EventSpace(hides_updates=False))
    kube = KubeTarget(TargetOptions(kubeconfig="/nonexistent"))
    with pytest.raises(UsageError, match="unobserved-changes: a real proxy watches the API"):
        kube.apply(MOVED)
    assert "unobserved-changes" in uncheckable_features(kube)
    assert not options_for(kube, seed=1, profile=PROFILES["quick"]).space.hides_updates
    assert options_for(ModelTarget(), seed=1, profile=PROFILES["quick"]).space.hides_updates
