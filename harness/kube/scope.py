"""What every part of one run shares: the connection, where objects go, the clients, the clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.clock import Clock
from harness.kube.api import Cluster
from harness.kube.objects import Placement


@dataclass(frozen=True)
class Scope:
    """One run in one cluster. `placement.namespace` is the only namespace the run writes to;
    `clients` are the client names (`harness.traffic.CLIENTS`)."""

    cluster: Cluster
    placement: Placement
    clients: Sequence[str]
    clock: Clock

    @property
    def namespace(self) -> str:
        return self.placement.namespace
