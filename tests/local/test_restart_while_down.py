"""Changes made while the proxy is down (issue 12 items 2 and 4) on real packets: the local
target stops every node's proxy, changes the pods, then starts new instances; the harness's
iptables and nftables proxies reconcile conntrack at that start (kube-proxy's
`CleanStaleEntries`), so a held UDP flow whose endpoint was made unready or deleted meanwhile
moves to a usable endpoint, while flows to endpoints still usable keep theirs; the mutant that
does not reconcile at the start is caught at the restart."""

from __future__ import annotations

from typing import Any

import pytest

from harness.checks.connections import PROPERTY
from harness.events import CreateService, DeletePod, Event, RestartProxy, Scale, SetReady
from harness.longlived import MAX_UDP_HELD
from harness.model.objects import Protocol, labels_of
from tests.local.conftest import needs_root
from tests.local.histories import failures, replayed

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
SEQUENCE: list[Event] = [
    CreateService("svc-a", WEB, "udp", protocol=Protocol.UDP),
    Scale("web", 1),  # every held flow opens to web-0
    Scale("web", 3),
    RestartProxy((DeletePod("web-1", 0),)),  # web-0 still usable: kept (kubernetes#122740)
    RestartProxy((SetReady("web-0", False),)),  # unready while down (kubernetes#105657): moved
    RestartProxy((DeletePod("web-2", 0), Scale("web", 3))),  # deleted while down (#19029)
]
KEPT_STEP, UNREADY_STEP = 3, 4


def held(record: dict[str, Any], backend: str) -> list[dict[str, Any]]:
    return [c for c in record["long_lived"] if c.get("backend") == backend]


@pytest.mark.parametrize("proxy", ["iptables", "nftables"])
def test_held_udp_flows_follow_changes_made_while_the_proxy_was_down(
    proxy: str, prefix: str
) -> None:
    history = replayed(f"local:{proxy}", prefix, SEQUENCE)
    assert [failures(record) for record in history] == [[]] * len(SEQUENCE)
    kept = held(history[KEPT_STEP], "web-0/u1")
    assert len(kept) == MAX_UDP_HELD and all(c["answered_by"] == "web-0/u1" for c in kept), kept
    moved = held(history[UNREADY_STEP], "web-0/u1")
    assert len(moved) == MAX_UDP_HELD, history[UNREADY_STEP]["long_lived"]
    assert all(c["answered_by"] not in (None, "web-0/u1") for c in moved), moved
    last = history[-1]["long_lived"]
    assert len(last) == MAX_UDP_HELD and all(c["answered_by"] is not None for c in last), last
    assert all(c["answered_by"] != c["backend"] for c in last), last  # web-2 was deleted


def test_a_proxy_that_forgets_what_changed_while_down_is_caught(prefix: str) -> None:
    spec = "local:mutant-iptables-forgets-while-down"
    history = replayed(spec, prefix, SEQUENCE[: UNREADY_STEP + 1])
    assert all(not failures(record) for record in history[:UNREADY_STEP])
    (found,) = [v for v in failures(history[UNREADY_STEP]) if v["property"] == PROPERTY]
    assert "stale conntrack entry" in found["message"]
    assert {f["fault"] for f in found["evidence"]["udp_flows"]} == {"stale"}
