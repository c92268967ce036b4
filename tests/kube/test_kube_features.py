"""What the kube target claims (issue 11 item 9): every feature but `load-balancer`, which a
cluster without a LoadBalancer controller cannot carry (its ingress never gets an IP) and the
kube target does not send to: reported unsupported with the environment's note, never passed,
and never drawn, so nothing waits for an ingress IP."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.events import SetExternalIPs
from harness.features import (
    ALL_FEATURES,
    EXTERNAL_IPS,
    LOAD_BALANCER,
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
    assert origin == "target" and supported == ALL_FEATURES - {LOAD_BALANCER, EXTERNAL_IPS}
    judged = {r.feature.name: r for r in judge_features([], supported, {})}
    assert judged[LOAD_BALANCER].status == FeatureStatus.UNSUPPORTED
    assert environment_notes("kube")[LOAD_BALANCER].startswith("unsupported by the environment")
    assert not EventSpace().for_features(supported).supports(LOAD_BALANCER)
    assert "load-balancer-reached" in unsupported_states(supported)


def test_external_ips_are_unsupported_by_the_environment_and_refused_in_one_line() -> None:
    target = KubeTarget(TargetOptions())
    supported, _ = target_features(target)
    judged = {r.feature.name: r for r in judge_features([], supported, {})}
    assert judged[EXTERNAL_IPS].status == FeatureStatus.UNSUPPORTED
    assert environment_notes("kube")[EXTERNAL_IPS].startswith("unsupported by the environment")
    assert not EventSpace().for_features(supported).supports(EXTERNAL_IPS)
    assert "external-ip-reached" in unsupported_states(supported)
    with pytest.raises(UsageError, match="DenyServiceExternalIPs"):
        target.apply(SetExternalIPs("web", ("10.254.0.10",)))


def test_host_clients_with_a_value_but_on_or_off_is_one_line_before_anything() -> None:
    with pytest.raises(UsageError) as raised:
        KubeTarget(TargetOptions(extra={"host_clients": "maybe"}))
    assert str(raised.value) == "the kube target option host_clients must be on or off, not 'maybe'"
