"""Stale snapshots on real packets (issue 12 item 4, Sieve's stale-state perturbation): the
harness's kernel proxies, shown the cluster as it was some changes ago and then as it is, converge
again with every Service waited for; `mutant-iptables-tombstones`, which ignores a Service added
again after it saw it deleted, is caught at the stale snapshot that deletes and re-adds a
Service, and only there."""

from __future__ import annotations

import pytest

from harness.events import CreateService, Event, Scale, StaleSnapshot
from harness.model.objects import labels_of
from tests.local.conftest import needs_root
from tests.local.histories import failures, replayed

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
BEFORE: list[Event] = [CreateService("svc-a", WEB), Scale("web", 3), CreateService("svc-b", WEB)]
SEQUENCE: list[Event] = [*BEFORE, StaleSnapshot(1), Scale("web", 2), StaleSnapshot(3)]
STALE = (3, 5)  # indexes of the stale snapshots in SEQUENCE


@pytest.mark.parametrize("proxy", ["iptables", "nftables"])
def test_correct_proxies_come_back_from_a_stale_snapshot(proxy: str, prefix: str) -> None:
    history = replayed(f"local:{proxy}", prefix, SEQUENCE)
    assert [failures(record) for record in history] == [[]] * len(SEQUENCE)
    for index in STALE:
        assert sorted(history[index]["services"]) == ["svc-a", "svc-b"]  # every one waited for
        assert "stale-snapshot" in history[index]["features"]


def test_a_proxy_that_keeps_tombstones_is_caught_at_the_stale_snapshot(prefix: str) -> None:
    history = replayed("local:mutant-iptables-tombstones", prefix, SEQUENCE[: STALE[0] + 1])
    assert all(not failures(record) for record in history[: STALE[0]])
    found = failures(history[STALE[0]])
    assert found and {v["property"] for v in found} >= {"availability"}, found
    assert all(v["service"] == "svc-b" for v in found if "service" in v), found
