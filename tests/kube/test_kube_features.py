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
    TOPOLOGY,
    FeatureStatus,
    judge_features,
    unsupported_states,
)
from harness.protocols import SCTP_FEATURE, environment_notes
from harness.registry import TargetOptions
from harness.strategies import EventSpace
from harness.targets.base import target_features
from harness.targets.kube import KubeTarget


def test_load_balancer_is_unsupported_by_the_environment() -> None:
    supported, origin = target_features(KubeTarget(TargetOptions()))
    unsupported = {LOAD_BALANCER, EXTERNAL_IPS, TOPOLOGY, SCTP_FEATURE}  # sctp: no client
    assert origin == "target" and supported == ALL_FEATURES - unsupported
    judged = {r.feature.name: r for r in judge_features([], supported, {})}
    assert judged[LOAD_BALANCER].status == FeatureStatus.UNSUPPORTED
    assert environment_notes("kube")[LOAD_BALANCER].startswith("unsupported by the environment")
    assert not EventSpace().for_features(supported).supports(LOAD_BALANCER)
    assert "load-balancer-reached" in unsupported_states(supported)


@pytest.mark.parametrize(
    ("feature", "state"),
    [(EXTERNAL_IPS, "external-ip-reached"), (TOPOLOGY, "topology-narrowed")],
)
def test_what_a_cluster_cannot_offer_is_unsupported_by_the_environment(
    feature: str, state: str
) -> None:
    """externalIPs (admission, no route to a chosen node) and topology (the cluster's zone
    labels are not the model's): never drawn, never judged, reported with the reason."""
    supported, _ = target_features(KubeTarget(TargetOptions()))
    judged = {r.feature.name: r for r in judge_features([], supported, {})}
    assert judged[feature].status == FeatureStatus.UNSUPPORTED
    assert environment_notes("kube")[feature].startswith("unsupported by the environment")
    assert not EventSpace().for_features(supported).supports(feature)
    assert state in unsupported_states(supported)


def test_set_external_ips_is_refused_in_one_line() -> None:
    with pytest.raises(UsageError, match="DenyServiceExternalIPs"):
        KubeTarget(TargetOptions()).apply(SetExternalIPs("web", ("10.254.0.10",)))


def test_host_clients_with_a_value_but_on_or_off_is_one_line_before_anything() -> None:
    with pytest.raises(UsageError) as raised:
        KubeTarget(TargetOptions(extra={"host_clients": "maybe"}))
    assert str(raised.value) == "the kube target option host_clients must be on or off, not 'maybe'"
