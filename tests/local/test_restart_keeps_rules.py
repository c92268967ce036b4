"""A proxy restart on real packets, for the kernel proxies that keep their rules across it
(`RuleKeepingProxy`, as kube-proxy does): fresh connections sent while it restarts all succeed
(`harness.restart_traffic`), and the xt_recent lists and nft affinity sets survive it, so the
runner judges ClientIP affinity through it as through any unrelated change.
`mutant-iptables-clears-rules-on-restart` (the harness's old behaviour: every rule removed at the
stop, the new instance starting empty) loses every client's affinity and is caught at the
restart, or at the next probe from the same many clients at the latest (its window also fails
the during-restart sample when a request falls into it, which is likely but not asserted: it
depends on timing)."""

from __future__ import annotations

import pytest

from harness import registry
from harness.checks.affinity import PROPERTY
from harness.events import CreateService, Event, Probe, RestartProxy, Scale
from harness.model.objects import Affinity, labels_of
from harness.restart_traffic import PART
from harness.runner import RunConfig, Runner, StepResult
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


def run(spec: str, prefix: str) -> list[StepResult]:
    target = registry.make_target(spec, registry.TargetOptions(prefix=prefix))
    target.open()
    try:
        assert keeps_proxy_state(target)  # so the runner keeps the affinity memory
        runner = Runner(target, CONFIG)
        runner.reset()
        return runner.run(SEQUENCE)
    finally:
        target.close()


@pytest.mark.parametrize("proxy", ["iptables", "nftables"])
def test_a_kernel_proxy_restarts_without_a_failure_and_keeps_affinity(
    proxy: str, prefix: str
) -> None:
    results = run(f"local:{proxy}", prefix)
    assert len(results) == len(SEQUENCE)
    assert [v for r in results for v in r.verdicts if not v.holds] == []
    during = [v for v in results[RESTART].verdicts if v.evidence.get("part") == PART]
    assert {v.property for v in during} == {"availability", "no-stale-traffic"}, during
    assert all(v.evidence["requests"] >= 1 for v in during)
    assert any(v.property == PROPERTY for v in results[RESTART + 1].verdicts)  # judged


def test_a_proxy_that_clears_its_rules_on_restart_is_caught(prefix: str) -> None:
    results = run("local:mutant-iptables-clears-rules-on-restart", prefix)
    assert all(v.holds for r in results[:RESTART] for v in r.verdicts)
    caught = [v for r in results[RESTART:] for v in r.verdicts if v.property == PROPERTY]
    broken = [v for v in caught if not v.holds]
    assert broken, caught
    assert "affinity broken" in broken[0].message, broken
