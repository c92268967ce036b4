"""What the kube target claims (issue 11 item 9): every feature but `load-balancer`, which a
cluster without a LoadBalancer controller cannot carry (its ingress never gets an IP): reported
unsupported with the environment's note, never passed, and never drawn, so nothing waits for an
ingress IP. `load_balancer=on` says the cluster has a controller."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.features import ALL_FEATURES, LOAD_BALANCER, FeatureStatus, judge_features
from harness.protocols import environment_notes
from harness.registry import TargetOptions
from harness.strategies import EventSpace
from harness.targets.base import target_features
from harness.targets.kube import KubeTarget


def test_load_balancer_is_unsupported_by_the_environment_unless_claimed() -> None:
    supported, origin = target_features(KubeTarget(TargetOptions()))
    assert origin == "target" and supported == ALL_FEATURES - {LOAD_BALANCER}
    judged = {r.feature.name: r for r in judge_features([], supported, {})}
    assert judged[LOAD_BALANCER].status in (FeatureStatus.UNSUPPORTED, FeatureStatus.NOT_TESTED)
    assert environment_notes("kube")[LOAD_BALANCER].startswith("unsupported by the environment")
    assert not EventSpace().for_features(supported).supports(LOAD_BALANCER)
    claimed = KubeTarget(TargetOptions(extra={"load_balancer": "on"}))
    assert target_features(claimed)[0] == ALL_FEATURES


@pytest.mark.parametrize("key", ["load_balancer", "host_clients"])
def test_an_on_off_option_with_another_value_is_one_line_before_anything(key: str) -> None:
    with pytest.raises(UsageError) as raised:
        KubeTarget(TargetOptions(extra={key: "maybe"}))
    assert str(raised.value) == f"the kube target option {key} must be on or off, not 'maybe'"
