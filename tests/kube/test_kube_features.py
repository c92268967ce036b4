"""What the kube target claims (issue 11 item 9): every feature but `load-balancer`, which a
cluster without a LoadBalancer controller cannot carry (its ingress never gets an IP) and the
kube target does not send to: reported unsupported with the environment's note, never passed,
and never drawn, so nothing waits for an ingress IP."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.features import (
    ALL_FEATURES,
    LOAD_BALANCER,
    TOPOLOGY,
    FeatureStatus,
    judge_features,
    unsupported_states,
)
from harness.protocols import environment_notes
from harness.registry import TargetOptions
from harness.strategies import EventSpace
from harness.targets.base import target_features
from harness.targets.kube import KubeTarget


def test_load_balancer_is_unsupported_by_the_environment() -> None:
    supported, origin = target_features(KubeTarget(TargetOptions()))
    assert origin == "target" and supported == ALL_FEATURES - {LOAD_BALANCER, TOPOLOGY}
    judged = {r.feature.name: r for r in judge_features([], supported, {})}
    assert judged[LOAD_BALANCER].status == FeatureStatus.UNSUPPORTED
    assert environment_notes("kube")[LOAD_BALANCER].startswith("unsupported by the environment")
    assert not EventSpace().for_features(supported).supports(LOAD_BALANCER)
    assert "load-balancer-reached" in unsupported_states(supported)


def test_topology_is_unsupported_by_the_environment() -> None:
    """The cluster's zone labels are not the model's: no distribution is drawn, none judged."""
    supported, _ = target_features(KubeTarget(TargetOptions()))
    judged = {r.feature.name: r for r in judge_features([], supported, {})}
    assert judged[TOPOLOGY].status == FeatureStatus.UNSUPPORTED
    assert environment_notes("kube")[TOPOLOGY].startswith("unsupported by the environment")
    assert not EventSpace().for_features(supported).supports(TOPOLOGY)
    assert "topology-narrowed" in unsupported_states(supported)


def test_host_clients_with_a_value_but_on_or_off_is_one_line_before_anything() -> None:
    with pytest.raises(UsageError) as raised:
        KubeTarget(TargetOptions(extra={"host_clients": "maybe"}))
    assert str(raised.value) == "the kube target option host_clients must be on or off, not 'maybe'"
