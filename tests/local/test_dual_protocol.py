"""One port number on TCP and UDP in one Service, and ports removed and changed in protocol, on
the local cluster (issue 12, item 3): iptables and nftables serve TCP 80 and UDP 80 of one
Service from the same pods, each judged on its own every step (`harness.ports`); removing the
UDP port stops only UDP (the TCP port stays judged and passing, and no pod answers UDP on the
old number any more); a protocol change (UDP 53 to TCP 53 in one update) moves the number to
the other protocol. The pod server answers UDP on the container port a pod is given (9053
here, beside the group's 8080). The disclosed mutant that keys ports by number alone is caught
at the step that populates the dual-protocol Service.

One sequence, replayed from a reset on each proxy (a few seconds each); then, on iptables, held
UDP flows through the removal of the TCP port of their number (the UDP flow checks)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from harness.events import (
    UDP_PORT_NAME,
    AddServicePort,
    CreateDualProtocolService,
    CreatePod,
    CreateService,
    RemoveServicePort,
    Scale,
    SetPortProtocol,
)
from harness.local.traffic import Batch
from harness.model.objects import Protocol, labels_of
from harness.registry import TargetOptions, make_target
from harness.runner import RunConfig, Runner, StepResult
from harness.targets.local import LocalTarget
from harness.traffic import CLIENTS
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
CONFIG = RunConfig(deadline_s=2.0)
SERVED = [
    CreateDualProtocolService("svc-a", WEB),
    Scale("web", 2),  # `http` and `udp` on 8080
    CreatePod("p-0", WEB, http_port=8081, udp_port=9053),  # `udp` on 9053: resolved per pod
]
REMOVED = RemoveServicePort("svc-a", "udp")
CHANGED = [
    AddServicePort("svc-a", "dns", 53, "udp", Protocol.UDP),
    SetPortProtocol("svc-a", "dns", Protocol.TCP, "http"),  # UDP 53 -> TCP 53 in one update
]


def failures(results: list[StepResult]) -> list[str]:
    return [f"{r.event}: {v.property}: {v.message}" for r in results for v in r.failures()]


def judged_ports(results: list[StepResult]) -> set[str]:
    messages = (v.message for r in results for v in r.verdicts)
    return {m.group(1) for message in messages if (m := re.match(r"svc-a:([\w-]+):", message))}


def udp_answers(target: LocalTarget, runner: Runner, port: int) -> Counter[str]:
    """The pods that answered 40 fresh UDP flows to svc-a's VIP on `port`, sent from the
    first client's namespace (how many each)."""
    vip = runner.model.services["svc-a"].cluster_ip
    batch = Batch(vip, port, 40, timeout_s=0.3, parallel=True, protocol="udp")
    outcomes = target._agents[CLIENTS[0]].run(batch)
    assert len(outcomes) == 40
    return Counter(o.backend.pod for o in outcomes if o.backend is not None)


@pytest.mark.parametrize("proxy", ["iptables", "nftables"])
def test_each_protocol_of_one_number_is_served_and_removed_on_its_own(
    proxy: str, prefix: str
) -> None:
    target = make_target(f"local:{proxy}", TargetOptions(prefix=prefix))
    assert isinstance(target, LocalTarget)
    target.open()
    try:
        runner = Runner(target, CONFIG)
        runner.reset()
        served = runner.run(SERVED)
        assert failures(served) == []
        assert judged_ports(served) == {"udp"}  # the UDP port was judged beside the first
        assert "dual-protocol-port" in served[-1].checked
        answered = udp_answers(target, runner, 80)
        assert answered.total() == 40 and "p-0" in answered, answered  # p-0 serves UDP on 9053

        removed = runner.step(REMOVED)
        assert failures([removed]) == []  # TCP 80 is judged after the removal and keeps working
        parts = [v.evidence for v in removed.verdicts if v.evidence.get("part") == "removed-port"]
        assert [(e["port"], e["protocol"], e["answered_by"]) for e in parts] == [(80, "UDP", [])]
        assert any(v.property == "availability" and v.holds for v in removed.verdicts)
        assert udp_answers(target, runner, 80) == Counter()  # UDP 80 stopped

        changed = runner.run(CHANGED)
        assert failures(changed) == []
        assert judged_ports(changed) == {"dns"}  # judged as UDP, then as TCP
        assert udp_answers(target, runner, 53) == Counter()  # UDP 53 went with the change
    finally:
        target.close()


def test_held_udp_flows_keep_their_pods_when_the_tcp_port_of_their_number_goes(
    prefix: str,
) -> None:
    """A UDP Service given TCP on its number too, then the TCP port removed: the UDP flows held
    since the first steps (fixed 5-tuples, `harness.longlived`) keep their pods, and no pod
    answers TCP on that number any more."""
    target = make_target("local:iptables", TargetOptions(prefix=prefix))
    assert isinstance(target, LocalTarget)
    target.open()
    try:
        runner = Runner(target, CONFIG)
        runner.reset()
        results = runner.run(
            [
                CreateService("svc-a", WEB, UDP_PORT_NAME, protocol=Protocol.UDP),
                Scale("web", 2),
                AddServicePort("svc-a", "tcp", 80, "http"),  # 80 on TCP beside 80 on UDP
                RemoveServicePort("svc-a", "tcp"),
            ]
        )
        assert failures(results) == []
        held = [
            connection
            for verdict in results[-1].verdicts
            if verdict.property == "long-lived-connections"
            for connection in verdict.evidence["connections"]
        ]
        assert held and all(c.get("protocol") == "UDP" for c in held), held
        assert all(c["answered_by"] == c["backend"] for c in held), held  # kept, not moved
        vip = runner.model.services["svc-a"].cluster_ip
        batch = Batch(vip, 80, 10, timeout_s=0.3, parallel=True)
        assert all(o.backend is None for o in target._agents[CLIENTS[0]].run(batch))
    finally:
        target.close()


def test_the_mutant_keying_ports_by_number_is_caught(prefix: str) -> None:
    """Of TCP 80 and UDP 80 the mutant programs only the last (UDP): TCP clients time out."""
    spec = "local:mutant-iptables-port-ignores-protocol"
    target = make_target(spec, TargetOptions(prefix=prefix))
    target.open()
    try:
        runner = Runner(target, RunConfig(deadline_s=0.5, request_timeout_s=0.3))
        runner.reset()
        found = failures(runner.run(SERVED[:2]))
    finally:
        target.close()
    assert found and any("availability" in line for line in found), found
    assert all(":udp:" not in line for line in found), found  # the UDP port is served
