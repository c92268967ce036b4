"""SCTP Services on the local cluster (issue 12 item 3), where the kernel tracks SCTP: the pods
answer INITs on a raw socket, the clients probe with INITs (`harness.local.sctp`), and the
iptables and nftables proxies program SCTP ports with the same rules as TCP's and UDP's.

One sequence per proxy, replayed from a reset: an SCTP ClusterIP Service over 2 pods balances
(every pod reached, each step judged by every property), is refused without endpoints (REJECT:
ECONNREFUSED on the probe's connected raw socket), and an SCTP port and a TCP port of one number
in one Service are independent (removing the TCP port leaves SCTP served); the kernel's
conntrack table shows the probes' sctp entries. The disclosed mutant that programs SCTP ports as
TCP is caught at the first step with endpoints (`CAUGHT_CHEAPER`,
tests/local/test_dataplane_mutants.py)."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from harness.errors import UsageError
from harness.events import (
    SCTP_PORT_NAME,
    AddServicePort,
    CreateService,
    RemoveServicePort,
    Scale,
)
from harness.local.names import netns_path
from harness.local.traffic import Batch
from harness.model.objects import Protocol, labels_of
from harness.protocols import SCTP_FEATURE, environment_notes, sctp_unsupported
from harness.proxies.rules.conntrack import flow_of
from harness.registry import TargetOptions, make_target
from harness.runner import RunConfig, Runner, StepResult
from harness.targets.base import target_features
from harness.targets.local import LocalTarget
from harness.traffic import CLIENTS, ErrorKind, TrafficRequest
from harness.udp_support import generates_sctp
from tests.local.conftest import needs_root

pytestmark = [
    pytest.mark.netns,
    needs_root,
    pytest.mark.skipif(sctp_unsupported() is not None, reason="the kernel does not track SCTP"),
]

WEB = labels_of({"app": "web"})
CONFIG = RunConfig(deadline_s=2.0)
SCTP_SERVICE = CreateService("svc-a", WEB, SCTP_PORT_NAME, protocol=Protocol.SCTP)
TCP_BESIDE = AddServicePort("svc-a", "tcp", 80, "http")  # TCP 80 beside SCTP 80


def failures(results: list[StepResult]) -> list[str]:
    return [f"{r.event}: {v.property}: {v.message}" for r in results for v in r.failures()]


def sctp_answers(target: LocalTarget, runner: Runner, count: int = 24) -> Counter[str]:
    """How each pod or error answered `count` fresh SCTP probes to svc-a's VIP on 80."""
    vip = runner.model.services["svc-a"].cluster_ip
    batch = Batch(vip, 80, count, timeout_s=0.5, parallel=True, protocol="sctp")
    outcomes = target._agents[CLIENTS[0]].run(batch)
    assert len(outcomes) == count
    return Counter(o.backend.pod if o.backend else str(o.error) for o in outcomes)


def sctp_entries(target: LocalTarget) -> list[str]:
    """The sctp lines of the node's conntrack table."""
    node = target._open_cluster().node_netns
    listed = subprocess.run(
        ["ip", "netns", "exec", node, "conntrack", "-L", "-p", "sctp"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert netns_path(node)  # a harness namespace, never the root one
    return [line for line in listed.stdout.splitlines() if line.startswith("sctp")]


@pytest.mark.parametrize("proxy", ["iptables", "nftables"])
def test_an_sctp_service_balances_rejects_and_stands_beside_tcp(proxy: str, prefix: str) -> None:
    target = make_target(f"local:{proxy}", TargetOptions(prefix=prefix))
    assert isinstance(target, LocalTarget)
    assert target.sends_sctp
    target.open()
    try:
        runner = Runner(target, CONFIG)
        runner.reset()
        empty = runner.step(SCTP_SERVICE)
        assert failures([empty]) == []
        assert sctp_answers(target, runner, 4) == Counter({ErrorKind.REFUSED.value: 4})

        served = runner.run([Scale("web", 2), TCP_BESIDE])
        assert failures(served) == []
        traced = [v.message for v in served[0].verdicts if v.property == "exact-balance"]
        assert traced == ["svc-a: programmed rules match the model"]  # the rule tracer follows SCTP
        answered = sctp_answers(target, runner)
        assert set(answered) == {"web-0", "web-1"}, answered  # every pod reached
        vip = runner.model.services["svc-a"].cluster_ip
        flows = {flow_of(line) for line in sctp_entries(target)}
        pods = {pod.ip for pod in runner.model.pods.values()}
        translated = {(f.cluster_ip, f.port, f.endpoint_ip, f.endpoint_port) for f in flows if f}
        assert {(vip, 80, ip, 8080) for ip in pods} <= translated, flows  # DNATed, both pods

        with pytest.raises(UsageError, match="is SCTP; counting at the pods"):
            target.tally(TrafficRequest(service="svc-a", count=10))  # wrk speaks TCP only

        removed = runner.step(RemoveServicePort("svc-a", "tcp"))
        assert failures([removed]) == []
        assert set(sctp_answers(target, runner)) == {"web-0", "web-1"}  # SCTP 80 unaffected
    finally:
        target.close()


@pytest.mark.parametrize(
    ("spec", "supported"),
    [("local:iptables", True), ("local:nftables", True), ("local:userspace", False)],
)
def test_the_features_report_says_sctp_where_the_proxy_translates_it(
    spec: str, supported: bool, prefix: str
) -> None:
    """Here (a kernel that tracks SCTP, without SCTP sockets) `sctp` has no environment note:
    the kernel proxies declare it and send it, the relaying ones do not declare it."""
    target = make_target(spec, TargetOptions(prefix=prefix))  # not opened: nothing is made
    assert environment_notes(spec) == {}
    assert (SCTP_FEATURE in target_features(target)[0]) == supported
    assert generates_sctp(target) == supported


def test_sctp_on_the_loopback_variant_is_one_usage_line(prefix: str) -> None:
    """Its pods share the harness's namespace, where no raw SCTP responder or probe may run: a
    replayed SCTP Service is refused as bad input, nothing sent."""
    target = make_target("local:loopback", TargetOptions(prefix=prefix))
    assert isinstance(target, LocalTarget) and not target.sends_sctp
    target.open()
    try:
        runner = Runner(target, CONFIG)
        runner.reset()
        with pytest.raises(UsageError, match="is SCTP, which this target cannot send"):
            runner.step(SCTP_SERVICE)
    finally:
        target.close()


def test_the_mutant_programming_sctp_as_tcp_is_caught(prefix: str) -> None:
    """Its SCTP port's rules match TCP: SCTP probes time out where they must be refused, then
    where they must reach a pod."""
    target = make_target("local:mutant-iptables-sctp-as-tcp", TargetOptions(prefix=prefix))
    target.open()
    try:
        runner = Runner(target, RunConfig(deadline_s=0.5, request_timeout_s=0.3))
        runner.reset()
        found = failures(runner.run([SCTP_SERVICE, Scale("web", 2)]))
    finally:
        target.close()
    assert any("reject-when-empty" in line for line in found), found
    assert any("availability" in line for line in found), found
