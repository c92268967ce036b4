"""The fixture shared by the modules that test the iptables proxy on three nodes, one per zone
(node-1 zone-a, node-2 zone-b, node-3 zone-c: several nodes, topology): one opened 3-node
target for the module. A module uses it with `two_nodes.cluster` (the same target reset after
each test) by binding the names: `target = three_nodes.target` and
`cluster = two_nodes.cluster`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.proxies.iptables import IptablesProxy
from harness.targets.local import LocalTarget
from tests.local.conftest import opened_target

NODES = ("node-1", "node-2", "node-3")


@pytest.fixture(scope="module")
def target() -> Iterator[LocalTarget]:
    with opened_target(IptablesProxy, len(NODES)) as opened:
        yield opened
