"""Opt-out labels (I13) on the local cluster: the target hands a labelled Service to the proxy as
a watch without kube-proxy's label selector would, and every harness proxy leaves it unprogrammed
(new connections time out at the node's Service-range sink: neither answered nor refused), then
programs it again when the label goes."""

from __future__ import annotations

from typing import Any

import pytest

from harness.events import CreateService, Event, Probe, Scale, SetServiceLabel
from harness.model.objects import SERVICE_PROXY_NAME_LABEL, labels_of
from harness.proxies.iptables import IptablesProxy
from harness.proxies.nginx import NginxProxy
from harness.runner import RunConfig, replay
from harness.targets.local import LocalTarget
from tests.local.conftest import needs_root
from tests.local.test_target import RecordingProxy

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
EVENTS: list[Event] = [
    CreateService("svc-a", WEB),
    Scale("web", 2),
    SetServiceLabel("svc-a", SERVICE_PROXY_NAME_LABEL, "other-proxy"),
    SetServiceLabel("svc-a", SERVICE_PROXY_NAME_LABEL, None),
]
CONFIG = RunConfig(deadline_s=2.0)
AGAIN: list[Event] = [
    *EVENTS[:3],
    Probe("svc-a"),
    Probe("svc-a"),
    EVENTS[3],
    Probe("svc-a"),
    *EVENTS[2:4],
    Probe("svc-a"),
]
"""Probes of an opted-out Service leave untranslated conntrack entries (to the node's sink); a
kernel proxy that did not clear them when the label goes sent clients reusing such a 5-tuple
to the sink, and about one new connection in a hundred timed out (every run of this sequence
failed `availability` without the clearing: `harness.proxies.rules.conntrack.untranslated`)."""


def test_the_labelled_service_is_handed_to_the_proxy(prefix: str) -> None:
    target = LocalTarget(RecordingProxy, prefix=prefix)
    target.open()
    try:
        for event in EVENTS[:3]:
            target.apply(event)
        assert len(target.endpoint_slices("svc-a")[0].endpoints) == 2
        calls = target.proxy.calls  # type: ignore[attr-defined]
    finally:
        target.close()
    assert calls[-2:] == [("service-update", "svc-a"), ("sync", "")]


def test_a_balancer_hands_an_opted_out_vip_back_to_the_sink(prefix: str) -> None:
    """nginx and haproxy make the whole Service range local (their REJECT), so an opted-out VIP
    would be refused; the shared base carves it out (`harness.proxies.reloading.carve_out`).
    The kernel proxies are run by the next test and the mutant test, the userspace proxy leaves
    an unprogrammed VIP as it leaves a deleted Service's; every proxy gets its Services through
    `TrackingProxy`'s one filter (tests/core/test_opt_out.py)."""
    history = _clean_replay(NginxProxy, EVENTS, prefix)
    checked = [set(record["features"]) for record in history]
    assert "opted-out" in checked[2] and {"opt-out-removed", "usable-2-6"} <= checked[3]


def test_a_kernel_proxy_clears_untranslated_flows_when_the_label_goes(prefix: str) -> None:
    assert len(_clean_replay(IptablesProxy, AGAIN, prefix)) == len(AGAIN)


def _clean_replay(proxy: type, events: list[Event], prefix: str) -> list[dict[str, Any]]:
    """The history of `events` on a fresh local cluster with `proxy`; asserts no verdict
    failed (a step's `verdicts` is a count when all held, the failing ones otherwise)."""
    target = LocalTarget(proxy, prefix=prefix)
    target.open()
    try:
        runner = replay(target, events, CONFIG)
    finally:
        target.close()
    failed = [r["verdicts"] for r in runner.history if isinstance(r.get("verdicts"), list)]
    assert failed == []
    return list(runner.history)
