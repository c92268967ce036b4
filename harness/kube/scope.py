"""What every part of one run shares: the connection, where objects go, the clients, the clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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

    def create_pod(self, manifest: Mapping[str, Any], clock: Clock, wait_s: float) -> None:
        """Create one of the harness's own pods in the run's namespace, retrying for `wait_s`
        while a new namespace's default ServiceAccount does not exist yet (`Cluster.create`)."""
        self.cluster.create(
            f"create pods in namespace {self.namespace}",
            self.cluster.core.create_namespaced_pod,
            self.namespace,
            dict(manifest),
            clock=clock,
            wait_s=wait_s,
        )

    def delete_pod(self, name: str) -> None:
        """Delete one of the harness's own pods at once (grace 0); one already gone is fine."""
        self.cluster.call(
            f"delete pods in namespace {self.namespace}",
            self.cluster.core.delete_namespaced_pod,
            name,
            self.namespace,
            grace_period_seconds=0,
            allow=(404,),
        )
