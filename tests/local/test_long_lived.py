"""Proxy restarts and long-lived connections on real packets: the harness's iptables, nftables
and userspace proxies converge again after a restart and keep every established connection to
a usable endpoint on its backend (the userspace proxy relays them in its own process, so its
restart ends them, which is excused and said); the two conntrack-flushing mutants are caught at
the step that drops them; a proxy that cannot start again is one proxy-contract verdict."""

from __future__ import annotations

from typing import Any

import pytest

from harness import registry
from harness.checks import PROXY_CONTRACT
from harness.checks.connections import PROPERTY
from harness.events import CreatePod, CreateService, DeletePod, Event, RestartProxy, Scale, SetReady
from harness.longlived import MAX_HELD, RELAY_RESTARTED
from harness.model.objects import labels_of
from harness.proxies.failure import ProxyFailure
from harness.proxies.iptables import IptablesProxy
from harness.runner import RunConfig, Runner, replay
from harness.targets.local import LocalTarget
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
SEQUENCE: list[Event] = [
    CreateService("svc-a", WEB),
    Scale("web", 3),
    CreatePod("p-0", labels_of({"app": "api"})),  # unrelated: no Service selects it
    RestartProxy(),
    SetReady("web-0", False),
    RestartProxy(),
    DeletePod("web-1", 0),
]
RESTARTS = (3, 5)  # indexes of the restarts in SEQUENCE
CONFIG = RunConfig(deadline_s=LocalTarget.default_deadline_s)


def run(spec: str, prefix: str) -> list[dict[str, Any]]:
    target = registry.make_target(spec, registry.TargetOptions(prefix=prefix))
    target.open()
    try:
        return list(replay(target, SEQUENCE, CONFIG).history)
    finally:
        target.close()


def failures(record: dict[str, Any]) -> list[dict[str, Any]]:
    verdicts = record["verdicts"]
    return [] if isinstance(verdicts, int) else list(verdicts)


@pytest.mark.parametrize("proxy", ["iptables", "nftables", "userspace"])
def test_correct_proxies_survive_restarts_and_keep_connections(proxy: str, prefix: str) -> None:
    history = run(f"local:{proxy}", prefix)
    assert [failures(record) for record in history] == [[]] * len(SEQUENCE)
    assert len(history[2]["long_lived"]) == MAX_HELD  # opened after the scale, asked after
    for index in RESTARTS:
        assert sorted(history[index]["services"]) == ["svc-a"]  # waited for again
        assert history[index]["services"]["svc-a"]["latency_s"] is not None
    kept = [c for i in RESTARTS for c in history[i]["long_lived"]]
    if proxy == "userspace":  # relays in its own process: a restart ends its connections
        assert all(c["error"] is not None for c in kept)
    else:
        assert all(c["answered_by"] == c["backend"] for c in kept), kept
    unrelated = history[2]["long_lived"]
    assert all(c["answered_by"] == c["backend"] for c in unrelated), unrelated


def test_a_relaying_proxys_restart_is_excused_in_the_evidence(prefix: str) -> None:
    target = registry.make_target("local:userspace", registry.TargetOptions(prefix=prefix))
    target.open()
    try:
        runner = Runner(target, CONFIG)
        runner.reset()
        runner.run(SEQUENCE[:3])
        (step,) = runner.run([RestartProxy()])
    finally:
        target.close()
    (verdict,) = [v for v in step.verdicts if v.property == PROPERTY]
    assert verdict.holds and verdict.evidence["failures_excused"] == RELAY_RESTARTED


@pytest.mark.parametrize(
    ("mutant", "caught_at"),
    [
        ("mutant-iptables-flushes-on-restart", RESTARTS[0]),
        ("mutant-iptables-flushes-every-sync", 2),  # the unrelated pod's sync flushes
    ],
)
def test_conntrack_flushing_mutants_are_caught(mutant: str, caught_at: int, prefix: str) -> None:
    history = run(f"local:{mutant}", prefix)
    found = [v for v in failures(history[caught_at]) if v["property"] == PROPERTY]
    assert found, history[caught_at]
    assert "still usable were dropped" in found[0]["message"]
    assert all(not failures(record) for record in history[:caught_at])


class CannotRestart(IptablesProxy):
    """Starts once; every later start fails as a proxy that cannot come back would."""

    name = "test-cannot-restart"
    starts = 0

    def start(self, node: Any) -> None:
        CannotRestart.starts += 1
        if CannotRestart.starts > 1:  # open() starts it (reset() keeps a fresh proxy)
            raise ProxyFailure("test proxy", "did not start again")
        super().start(node)


def test_a_proxy_that_cannot_restart_is_one_proxy_contract_verdict(prefix: str) -> None:
    CannotRestart.starts = 0
    target = LocalTarget(CannotRestart, prefix=prefix)
    target.open()
    try:
        runner = Runner(target, CONFIG)
        runner.reset()
        results = runner.run(SEQUENCE)
    finally:
        target.close()
    assert len(results) == RESTARTS[0] + 1 and runner.broken is not None
    (verdict,) = results[-1].verdicts
    assert verdict.property == PROXY_CONTRACT and not verdict.holds
    assert "did not start again" in verdict.message
