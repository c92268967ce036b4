"""Services of several ports on the local cluster (issue 12, item 3): every proxy that declares
the `multi-port` feature programs each port on its own, named targetPorts resolved per pod
(a pod lacking `admin` is left out of that port only), and follows port and targetPort changes;
the disclosed mutant that programs only the first port is caught on the second.

One sequence, replayed from a reset on each proxy (about 2 s each)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from harness.events import (
    CreateMultiPortPod,
    CreateMultiPortService,
    CreatePod,
    Event,
    SetServicePort,
)
from harness.model.objects import labels_of
from harness.registry import TargetOptions, make_target
from harness.runner import RunConfig, Runner, StepResult
from harness.targets.base import target_features
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

EXAMPLE = Path(__file__).parents[2] / "examples" / "candidate-proxy" / "proxy.py"
WEB = labels_of({"app": "web"})
SEQUENCE: list[Event] = [
    CreateMultiPortService("svc-a", WEB, port_count=3),
    CreateMultiPortPod("p-0", WEB, http_port=8080, admin_port=9090),
    CreateMultiPortPod("p-1", WEB, http_port=8080, admin_port=9091),
    CreatePod("p-2", WEB),  # no `admin`: listed on http and alt, left out of admin
    SetServicePort("svc-a", "admin", 82, "admin"),  # a new number
    SetServicePort("svc-a", "alt", 8000, "admin"),  # a new targetPort name
    SetServicePort("svc-a", "http", 81, 8080),  # a numeric targetPort, which every pod serves
]
CONFIG = RunConfig(deadline_s=8.0)  # passes converge at once; a loaded machine needs more than 2 s


def run(
    spec: str, prefix: str, events: list[Event] = SEQUENCE, config: RunConfig = CONFIG
) -> tuple[list[StepResult], frozenset[str]]:
    command = f"{sys.executable} {EXAMPLE}" if spec == "local:external" else None
    options = TargetOptions(prefix=prefix, proxy_command=command)
    target = make_target(spec, options)
    target.open()
    try:
        runner = Runner(target, config)
        runner.reset()
        return runner.run(events), target_features(target)[0]
    finally:
        target.close()


def failures(results: list[StepResult]) -> list[str]:
    return [f"{r.event}: {v.property}: {v.message}" for r in results for v in r.failures()]


@pytest.mark.parametrize("proxy", ["iptables", "nftables", "userspace", "nginx", "haproxy"])
def test_every_port_of_a_service_holds(proxy: str, prefix: str) -> None:
    results, features = run(f"local:{proxy}", prefix)
    assert "multi-port" in features
    assert failures(results) == []
    verdicts = [v for r in results for v in r.verdicts]
    judged = {m.group(1) for v in verdicts if (m := re.match(r"svc-a:(\w+):", v.message))}
    assert judged == {"admin", "alt"}, judged  # the ports after the first were judged
    assert any("multi-port-named" in r.checked for r in results)


def test_the_first_port_only_mutant_is_caught_on_the_second(prefix: str) -> None:
    """A Service of three ports and no pods: its first port REJECTs, the others time out."""
    quick = RunConfig(deadline_s=1.0, request_timeout_s=0.5)
    results, _ = run("local:mutant-iptables-first-port-only", prefix, SEQUENCE[:1], quick)
    found = failures(results)
    assert found and all("svc-a:admin" in line or "svc-a:alt" in line for line in found), found
