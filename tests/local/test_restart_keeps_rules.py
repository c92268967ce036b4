"""ClientIP affinity across a proxy restart, on real packets: the kernel proxies keep their rules
across a restart (`RuleKeepingProxy`, as kube-proxy does), so the xt_recent lists and nft
affinity sets survive it and the runner judges affinity through it as through any unrelated
change; `mutant-iptables-clears-rules-on-restart` (the harness's old behaviour: every rule
removed at the stop, the new instance starting empty) loses every client's affinity and is
caught at the restart, or at the next probe from the same many clients at the latest."""

from __future__ import annotations

from typing import Any

import pytest

from harness import registry
from harness.checks.affinity import PROPERTY
from harness.events import CreateService, Event, Probe, RestartProxy, Scale
from harness.model.objects import Affinity, labels_of
from harness.runner import RunConfig, replay
from harness.targets.base import keeps_proxy_state
from harness.targets.local import LocalTarget
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

SEQUENCE: list[Event] = [
    CreateService("svc-a", labels_of({"app": "web"}), session_affinity=Affinity.CLIENT_IP),
    Scale("web", 3),
    Probe("svc-a", many_clients=True),  # many client addresses, each stuck to one pod
    RestartProxy(),
    Probe("svc-a", many_clients=True),  # the same addresses: each must still be stuck
]
RESTART = 3
CONFIG = RunConfig(deadline_s=LocalTarget.default_deadline_s)


def run(spec: str, prefix: str) -> list[dict[str, Any]]:
    target = registry.make_target(spec, registry.TargetOptions(prefix=prefix))
    target.open()
    try:
        assert keeps_proxy_state(target)  # so the runner keeps the affinity memory
        return list(replay(target, SEQUENCE, CONFIG).history)
    finally:
        target.close()


def failures(record: dict[str, Any]) -> list[dict[str, Any]]:
    verdicts = record["verdicts"]  # a count when every verdict held
    return [] if isinstance(verdicts, int) else list(verdicts)


def affinity_failures(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in failures(record) if v["property"] == PROPERTY]


@pytest.mark.parametrize("proxy", ["iptables", "nftables"])
def test_affinity_survives_a_restart_of_a_kernel_proxy(proxy: str, prefix: str) -> None:
    history = run(f"local:{proxy}", prefix)
    assert len(history) == len(SEQUENCE)
    assert [failures(record) for record in history] == [[]] * len(SEQUENCE), history
    assert all(isinstance(record["verdicts"], int) for record in history)  # and were judged


def test_a_proxy_that_clears_its_rules_on_restart_is_caught(prefix: str) -> None:
    history = run("local:mutant-iptables-clears-rules-on-restart", prefix)
    assert all(not affinity_failures(record) for record in history[:RESTART]), history
    caught = [f for record in history[RESTART:] for f in affinity_failures(record)]
    assert caught, history[RESTART:]
    assert "affinity broken" in caught[0]["message"], caught
