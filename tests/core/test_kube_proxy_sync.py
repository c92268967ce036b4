"""kube-proxy's sync metrics as convergence evidence (`harness.kube.proxy_sync`)."""

from __future__ import annotations

from harness.kube.proxy_sync import sync_state_from_metrics

METRICS = """\
# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds [ALPHA] The last time proxy rules were...
# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge
kubeproxy_sync_proxy_rules_last_timestamp_seconds 1.7e+09
# TYPE kubeproxy_sync_proxy_rules_endpoint_changes_pending gauge
kubeproxy_sync_proxy_rules_endpoint_changes_pending {pending}
kubeproxy_sync_proxy_rules_service_changes_pending 0
kubeproxy_sync_proxy_rules_endpoint_changes_total 42
"""


def test_a_sync_that_ended_after_the_change_with_nothing_pending_is_final() -> None:
    state = sync_state_from_metrics(METRICS.format(pending=0), 1.7e9 - 0.5)
    assert state is not None and state.synced
    assert "+0.500 s" in state.source


def test_a_sync_before_the_change_or_a_pending_change_is_not_final() -> None:
    before = sync_state_from_metrics(METRICS.format(pending=0), 1.7e9 + 0.25)
    pending = sync_state_from_metrics(METRICS.format(pending=2), 1.7e9 - 0.5)
    assert before is not None and not before.synced and "-0.250 s" in before.source
    assert pending is not None and not pending.synced and "pending endpoint 2" in pending.source


def test_the_lagging_ip_family_decides_and_no_gauge_is_no_evidence() -> None:
    families = (
        'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} 100\n'
        'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv6"} 90\n'
    )
    state = sync_state_from_metrics(families, 95)
    assert state is not None and not state.synced
    assert (
        sync_state_from_metrics("up 1\nkubeproxy_sync_proxy_rules_duration_seconds_count 3\n", 0)
        is None
    )
