"""Source IP and hairpin (I15) on real packets: pods as clients (`TrafficRequest.client_pod`), the
pod server reporting who it saw, the harness's iptables and nftables proxies keeping a pod's
address and hairpinning as kube-proxy does, a relaying proxy (nginx) judged on hairpin only,
and the two disclosed mutants caught at the step that shows them."""

from __future__ import annotations

from typing import Any

import pytest

from harness import registry
from harness.checks.sources import HAIRPIN, SOURCE_IP
from harness.errors import UsageError
from harness.events import CreateService, Event, Scale
from harness.model.objects import labels_of
from harness.runner import RunConfig, replay
from harness.targets.local import LocalTarget
from harness.traffic import TrafficRequest
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
SEQUENCE: list[Event] = [CreateService("svc-a", WEB), Scale("web", 3), Scale("web", 1)]
SPREAD, ALONE = 1, 2  # steps with three usable endpoints, and with one (every request hairpins)
CONFIG = RunConfig(deadline_s=LocalTarget.default_deadline_s)


def verdicts(record: dict[str, Any], prop: str) -> list[dict[str, Any]]:
    found = record["verdicts"]
    return [] if isinstance(found, int) else [v for v in found if v["property"] == prop]


def run(spec: str, prefix: str) -> tuple[list[dict[str, Any]], LocalTarget]:
    """The sequence's history on `spec`; the target is returned open (the caller closes it)."""
    target = registry.make_target(spec, registry.TargetOptions(prefix=prefix))
    assert isinstance(target, LocalTarget)
    target.open()
    try:
        return list(replay(target, SEQUENCE, CONFIG).history), target
    except BaseException:
        target.close()
        raise


@pytest.mark.parametrize("proxy", ["iptables", "nftables"])
def test_kernel_proxies_keep_a_pods_source_and_let_it_reach_itself(proxy: str, prefix: str) -> None:
    history, target = run(f"local:{proxy}", prefix)
    try:
        assert all(isinstance(r["verdicts"], int) for r in history), history  # none failed
        spread = history[SPREAD]["pod_client"]
        client = spread["client_address"]
        others = [a for a in spread["answers"] if not a["backend"].startswith(spread["client_pod"])]
        assert others and all(a["seen"] == client for a in others), spread
        alone = history[ALONE]["pod_client"]
        assert all(a["backend"] == alone["client_pod"] for a in alone["answers"]), alone
        assert all(a["seen"] != alone["client_address"] for a in alone["answers"]), alone
        assert "hairpin" in history[ALONE]["features"]
        assert "source-ip-checked" in history[SPREAD]["features"]
        # a client namespace's own address reaches the pod unchanged (no --cluster-cidr masq)
        sample = target.send(TrafficRequest("svc-a", count=3))
        assert {o.seen_source for o in sample.outcomes} == {target.client_address("client-1")}
        with pytest.raises(UsageError, match="not running"):
            target.send(TrafficRequest("svc-a", client_pod="nope-0"))
    finally:
        target.close()


def test_a_relaying_proxy_is_judged_on_hairpin_only(prefix: str) -> None:
    history, target = run("local:nginx", prefix)
    target.close()
    assert not any(verdicts(record, SOURCE_IP) for record in history)
    assert not any(verdicts(record, HAIRPIN) for record in history)  # no failing one
    assert "source-ip-checked" not in history[SPREAD]["features"]
    assert "hairpin" in history[ALONE]["features"]
    spread = history[SPREAD]["pod_client"]  # what source-ip would have failed on
    assert all(a["seen"] != spread["client_address"] for a in spread["answers"]), spread


@pytest.mark.parametrize(
    ("mutant", "prop", "caught_at"),
    [
        ("mutant-iptables-masquerades-all", SOURCE_IP, SPREAD),
        ("mutant-iptables-no-hairpin-masquerade", HAIRPIN, ALONE),
    ],
)
def test_source_ip_mutants_are_caught(mutant: str, prop: str, caught_at: int, prefix: str) -> None:
    history, target = run(f"local:{mutant}", prefix)
    target.close()
    found = [v for record in history[: caught_at + 1] for v in verdicts(record, prop)]
    assert found and not found[0]["holds"], history
    others = {SOURCE_IP: HAIRPIN, HAIRPIN: SOURCE_IP}[prop]
    assert not any(verdicts(record, others) for record in history), history
