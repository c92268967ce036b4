"""Fixtures shared by the modules that test the proxies from outside the nodes (node ports,
ingress IPs, health checks): one opened 2-node target per kernel proxy for the module (or per
proxy of `targets(...)`), and the same target reset after each test. A module uses them by
binding the names: `target = two_nodes.target` and `cluster = two_nodes.cluster`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from harness.checks.external import PROPERTY
from harness.checks.verdict import Verdict
from harness.events import Event
from harness.proxies.base import Proxy
from harness.proxies.iptables import IptablesProxy
from harness.proxies.nftables import NftablesProxy
from harness.runner import RunConfig, Runner
from harness.targets.local import LocalTarget
from tests.local.conftest import opened_target

NODES = ("node-1", "node-2")


def targets(proxies: Sequence[type[Proxy]]) -> Any:
    """A module-scoped fixture: one opened 2-node target per proxy class of `proxies`."""

    @pytest.fixture(scope="module", params=proxies, ids=[p.name for p in proxies])
    def target(request: pytest.FixtureRequest) -> Iterator[LocalTarget]:
        with opened_target(request.param, len(NODES)) as opened:
            yield opened

    return target


target = targets([IptablesProxy, NftablesProxy])


@pytest.fixture
def cluster(target: LocalTarget) -> Iterator[LocalTarget]:
    """The module's target, reset after the test."""
    try:
        yield target
    finally:
        target.reset()


def part_verdicts(target: LocalTarget, events: list[Event], part: str) -> list[list[Verdict]]:
    """The `node-port` verdicts of part `part` of each step of `events` on `target`."""
    steps = Runner(target, RunConfig(deadline_s=2.0)).run(events)
    return [
        [v for v in step.verdicts if v.property == PROPERTY and v.evidence.get("part") == part]
        for step in steps
    ]
