"""Health checks from outside: after a step, one GET from the external client to every node's
healthCheckNodePort of each changed LoadBalancer Service under externalTrafficPolicy Local,
judged against the model (`harness.checks.health`, `node-port` part `health-check-node-port`;
issue 11 item 3, invariant I9).

After a step whose state the proxies say is final and in which nothing failed (run by
`harness.externalclients.ExternalClients.after`, after its own node-port sample held),
`HealthChecks.after` asks, at every node, the healthCheckNodePort of each Service whose health
view (`view`: its port, whether a proxy programs it, and per node the status and count the model
expects) changed for some node (every such Service after a proxy restart or stale snapshot),
and the old port of each Service that released one (made ClusterIP or NodePort, set to
externalTrafficPolicy Cluster, deleted, or opted out) while no Service has that number as a
node port and none is served there, so nothing may answer. At most two Services a step
(`harness.nodeclients.sample_each`: in name order, rotated by the step so a replay picks the
same).

Coverage: `health-check-only-terminating`, a node whose only local endpoints of a judged
Service are terminating but still serving (the e2e test's case: it must answer 503).

Only on targets with an external client and several nodes that can ask (`health_check`: the
model, the local cluster with `--nodes` 2 or more) and whose implementation declares
`health-check-node-port`; elsewhere the part is not applicable and its state uncheckable (the
kube target asks from its hostNetwork clients: `harness.kube.healthprobe`).
"""

from __future__ import annotations

from typing import Any

from harness.checks.health import HealthSample, check_health
from harness.checks.verdict import Verdict
from harness.events import NEMESIS_EVENTS, Event
from harness.features import HEALTH_CHECK_NODE_PORT
from harness.model.endpoints import (
    derive_slices,
    health_check_count,
    health_check_status,
    unique_endpoints,
)
from harness.model.objects import DEFAULT_NAMESPACE, opt_out_label
from harness.model.state import ClusterState
from harness.nodeclients import sample_each
from harness.targets.base import target_features
from harness.traffic import HealthCheckRequest

ONLY_TERMINATING = "health-check-only-terminating"
FEATURES = frozenset({ONLY_TERMINATING})
RECORD_KEY = "health_check"
TIMEOUT_S = 1.0


def asks_health(target: object) -> bool:
    """Whether `target` can ask a node's healthCheckNodePort (a `health_check` method)."""
    return callable(getattr(target, "health_check", None))


def judges_health(target: object) -> bool:
    """Whether the health checks are judged on `target` (opened): it can ask, and its
    implementation declares the feature (`targets.base.target_features`; an implementation
    that does not is never judged on it, whatever LoadBalancer Services it is handed)."""
    return asks_health(target) and HEALTH_CHECK_NODE_PORT in target_features(target)[0]


def served(state: ClusterState, name: str) -> int | None:
    """The healthCheckNodePort a default proxy serves for Service `name` (None: none; a
    Service with an opt-out label is not any default proxy's)."""
    service = state.services.get(name)
    if service is None or opt_out_label(service) is not None:
        return None
    return service.health_check_node_port


def view(state: ClusterState, name: str, nodes: tuple[str, ...]) -> tuple[Any, ...]:
    """What the health checks of Service `name` must show in `state`: its served port and
    every node's status and count. Pure."""
    port = served(state, name)
    if port is None:
        return (None,)
    return (
        port,
        *((health_check_status(state, name, n), health_check_count(state, name, n)) for n in nodes),
    )


def only_terminating(state: ClusterState, name: str, node: str) -> bool:
    """Whether Service `name`'s endpoints on `node` are all terminating and one still serves
    (I9: the health check must fail there though traffic is still served)."""
    here = [e for e, _ in unique_endpoints(derive_slices(state, name)) if e.node == node]
    return bool(here) and not any(e.ready for e in here) and any(e.serving for e in here)


def judged(
    event: Event, before: ClusterState, after: ClusterState, nodes: tuple[str, ...]
) -> list[tuple[str, int]]:
    """(Service, port) pairs to ask after `event` (module docstring), in Service name order.
    Pure."""
    pairs = []
    held = {p.node_port for s in after.services.values() for p in s.ports if p.node_port}
    held |= {port for name in after.services if (port := served(after, name)) is not None}
    for name in sorted(set(before.services) | set(after.services)):
        old, new = served(before, name), served(after, name)
        if new is not None and (
            isinstance(event, NEMESIS_EVENTS)
            or view(before, name, nodes) != view(after, name, nodes)
        ):
            pairs.append((name, new))
        elif old is not None and old != new and old not in held:
            pairs.append((name, old))
    return pairs


class HealthChecks:
    """One GET per node and judged Service per step (module docstring). Holds nothing between
    steps."""

    def __init__(self, target: Any, nodes: tuple[str, ...], timeout_s: float = TIMEOUT_S) -> None:
        self.target = target
        self.candidates = nodes
        self.nodes: tuple[str, ...] | None = None  # read from the declaration on first use
        self.timeout_s = timeout_s

    def after(
        self,
        step: int,
        event: Event,
        before: ClusterState,
        after: ClusterState,
        record: dict[str, Any],
    ) -> tuple[list[Verdict], frozenset[str], frozenset[str]]:
        """Ask and judge after step `step`: the verdicts and the coverage features reached and
        checked. Nothing where the target cannot ask or nothing changed."""
        if self.nodes is None:
            self.nodes = self.candidates if judges_health(self.target) else ()
        if not self.nodes:
            return [], frozenset(), frozenset()
        nodes = self.nodes
        ports = dict(judged(event, before, after, nodes))
        samples = sample_each(
            sorted(ports), step, nodes, lambda s, n: self._sample(after, s, ports[s], n)
        )
        verdict = check_health(samples)
        if verdict is None:
            return [], frozenset(), frozenset()
        record[RECORD_KEY] = verdict.evidence["samples"]
        features = frozenset(
            {ONLY_TERMINATING}
            if any(
                s.status is not None and only_terminating(after, s.service, s.node) for s in samples
            )
            else ()
        )
        return [verdict], features, features

    def _sample(self, state: ClusterState, service: str, port: int, node: str) -> HealthSample:
        reply = self.target.health_check(HealthCheckRequest(node, port, self.timeout_s))
        current = served(state, service) == port
        found = state.services.get(service)
        return HealthSample(
            service,
            found.namespace if found is not None else DEFAULT_NAMESPACE,
            node,
            port,
            health_check_status(state, service, node) if current else None,
            health_check_count(state, service, node) if current else None,
            reply,
        )
