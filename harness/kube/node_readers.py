"""The node-rule reader pods of `--read-node-rules` (clusters with kubelets).

One short-lived privileged hostNetwork pod per mapped node (`harness.kube.objects.
node_reader_manifest`, named `<run>-node-rules-<model node>`, labelled with the run), in the
run's own namespace: `start()` creates them and waits (bounded) until they run, `run_on(node)`
reads through `pods/exec`, `close()` deletes them. Whatever a killed run leaves goes with its
namespace (`harness clean --kube`). Nothing is created unless the user asked for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.clock import Clock
from harness.kube.node_rules import PodExec, Run, pod_reader
from harness.kube.objects import node_reader_manifest, node_reader_name
from harness.kube.observe import Watched
from harness.kube.runtime import wait_until_ready
from harness.kube.scope import Scope

CREATE_WAIT_S = 30.0  # until a new namespace's default ServiceAccount exists


class NodeReaders:
    """Reader pods on the cluster nodes `nodes` (model node -> cluster node)."""

    def __init__(
        self,
        scope: Scope,
        pods: Watched,
        nodes: Mapping[str, str],
        exec_function: PodExec,
        image: str,
        startup_s: float,
        clock: Clock,
    ) -> None:
        self._scope = scope
        self._pods = pods
        self._nodes = dict(nodes)
        self._exec = exec_function
        self._image = image
        self._startup_s = startup_s
        self._clock = clock
        self._created: list[str] = []

    def name(self, model_node: str) -> str:
        return node_reader_name(self._scope.placement.run, model_node)

    def start(self) -> None:
        """Create one reader pod per node and wait until all run (one-line EnvironmentProblem
        naming a pod that cannot start, for example an image without a pull secret). On failure
        the pods made so far stay recorded, so `close()` removes them."""
        for model_node, node in sorted(self._nodes.items()):
            name = self.name(model_node)
            manifest = node_reader_manifest(name, self._scope.placement, node, self._image)
            self._scope.create_pod(manifest, self._clock, CREATE_WAIT_S)
            self._created.append(name)
        wait_until_ready(self._pods, list(self._created), self._startup_s, self._clock)

    def run_on(self, model_node: str) -> tuple[Run, str]:
        """How to run a rule tool on `model_node`'s node, and a description of where."""
        if model_node not in self._nodes:
            raise KeyError(model_node)
        pod = self.name(model_node)
        return pod_reader(self._exec, pod), f"node {self._nodes[model_node]} (pod {pod})"

    def close(self) -> None:
        """Delete the reader pods (grace 0). Idempotent; a pod already gone is fine."""
        while self._created:
            self._scope.delete_pod(self._created.pop())
