"""UDP Services on real packets (issue 12 items 1 and 2): the harness's iptables and nftables
proxies program UDP ports, REJECT a UDP Service without endpoints (the client reads ICMP
port-unreachable as `refused`), balance new flows (the rule tracer follows `-p udp` and nft's
`udp dport`), and delete the UDP conntrack entries of endpoints no longer used, so a held flow
with a fixed 5-tuple follows its endpoint's removal; the mutant that keeps them is caught at
the step that makes its flows stale."""

from __future__ import annotations

from typing import Any

import pytest

from harness import registry
from harness.checks.connections import PROPERTY
from harness.events import CreateService, DeletePod, Event, Scale, SetReady, apply_all
from harness.model.endpoints import expect
from harness.model.objects import Protocol, labels_of
from harness.runner import RunConfig, replay
from harness.targets.local import LocalTarget
from harness.traffic import ErrorKind, TrafficRequest
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
SEQUENCE: list[Event] = [
    CreateService("svc-a", WEB, "udp", protocol=Protocol.UDP),
    Scale("web", 1),  # every held flow opens to web-0
    Scale("web", 3),  # and stays there
    SetReady("web-0", False),  # kubernetes#105657: the unready pod still answers
    DeletePod("web-1", 0),  # kubernetes#19029: the deleted pod answers nothing
    Scale("web", 0),
    Scale("web", 2),  # n -> 0 -> n (#48370)
]
UNREADY_STEP = 3
CONFIG = RunConfig(deadline_s=LocalTarget.default_deadline_s)


def failures(record: dict[str, Any]) -> list[dict[str, Any]]:
    verdicts = record["verdicts"]
    return [] if isinstance(verdicts, int) else list(verdicts)


@pytest.mark.parametrize("proxy", ["iptables", "nftables"])
def test_udp_services_reject_balance_and_move_held_flows(proxy: str, prefix: str) -> None:
    target = registry.make_target(f"local:{proxy}", registry.TargetOptions(prefix=prefix))
    target.open()
    try:
        target.reset()
        target.apply(SEQUENCE[0])
        empty = target.send(TrafficRequest("svc-a", count=3, timeout_s=1.0))
        history = list(replay(target, SEQUENCE, CONFIG).history)
        reach = target.reachability("svc-a", "http", "client-1")  # type: ignore[attr-defined]
    finally:
        target.close()
    assert [o.error for o in empty.outcomes] == [ErrorKind.REFUSED] * 3
    assert [failures(record) for record in history] == [[]] * len(SEQUENCE)
    flows = [c for c in history[UNREADY_STEP]["long_lived"] if c.get("protocol") == "UDP"]
    assert {c["backend"] for c in flows} == {"web-0/u1"}  # held since web-0 was alone
    assert all(c["answered_by"] not in (None, "web-0/u1") for c in flows), flows
    assert all(c["answered_by"] is not None for c in history[-1]["long_lived"])
    usable = expect(apply_all(SEQUENCE), "svc-a", "http").usable
    assert usable and set(reach.probabilities) == set(usable) and not reach.rejects
    assert all(p == pytest.approx(1 / len(usable)) for p in reach.probabilities.values())


def test_a_proxy_that_keeps_udp_conntrack_is_caught(prefix: str) -> None:
    spec = "local:mutant-iptables-keeps-udp-conntrack"
    target = registry.make_target(spec, registry.TargetOptions(prefix=prefix))
    target.open()
    try:
        history = list(replay(target, SEQUENCE[: UNREADY_STEP + 1], CONFIG).history)
    finally:
        target.close()
    assert all(not failures(record) for record in history[:UNREADY_STEP])
    (found,) = [v for v in failures(history[UNREADY_STEP]) if v["property"] == PROPERTY]
    assert "stale conntrack entry" in found["message"]
    assert {f["fault"] for f in found["evidence"]["udp_flows"]} == {"stale"}
