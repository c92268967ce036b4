"""Unobserved changes on real packets (issue 12 item 4, Sieve's unobserved-state perturbation):
the harness's kernel proxies, handed only the end state of changes their watch missed, converge
to it and keep the connections held to a VIP and endpoint that another Service took over (a
flow still programmed is never cleared, whichever Service programs it);
`mutant-iptables-immutable-vip`, which keeps a Service's first ClusterIP through every update,
is caught where a Service was deleted and created again with another VIP (a new Service took
its old one meanwhile), and only there."""

from __future__ import annotations

import pytest

from harness.events import CreateService, DeleteService, Event, Scale, UnobservedChanges
from harness.model.objects import labels_of
from tests.local.conftest import needs_root
from tests.local.histories import failures, replayed

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
MOVED = UnobservedChanges(
    (DeleteService("svc-a"), CreateService("svc-b", WEB), CreateService("svc-a", WEB))
)
REPLACED = UnobservedChanges((Scale("web", 0), Scale("web", 2)))
SEQUENCE: list[Event] = [CreateService("svc-a", WEB), Scale("web", 2), MOVED, REPLACED]


@pytest.mark.parametrize("proxy", ["iptables", "nftables"])
def test_correct_proxies_reach_the_end_state_of_changes_they_missed(
    proxy: str, prefix: str
) -> None:
    history = replayed(f"local:{proxy}", prefix, SEQUENCE)
    assert [failures(record) for record in history] == [[]] * len(SEQUENCE)
    assert "unobserved-changes" in history[2]["features"]
    assert "unobserved-changes" in history[3]["features"]


def test_a_proxy_that_takes_the_cluster_ip_as_immutable_is_caught_where_it_moved(
    prefix: str,
) -> None:
    history = replayed("local:mutant-iptables-immutable-vip", prefix, SEQUENCE[:3])
    assert all(not failures(record) for record in history[:2])
    found = failures(history[2])
    assert found and {v["property"] for v in found} <= {
        "programming-latency",
        "availability",
        "exact-balance",
    }
    assert all(v["message"].startswith("svc-a") for v in found), found
