"""Long-lived connections held across steps: the observations `long-lived-connections` judges.

After every step the runner hands its event and the model's new state to `LongLived.after`,
which asks once on each held connection (each request bounded by the request timeout), judges
the answers (`harness.checks.connections`), forgets the connections that failed or moved, and
then opens new ones until `MAX_HELD` are held: to Services that have usable endpoints now,
the Service with the fewest held connections first, from the clients in turn. So a
connection is opened after its Service got usable endpoints (on a probe too) and is judged
after every later step, whatever that step changed: its own endpoint, another endpoint,
another Service, or a proxy restart.

After an `OutOfWindow` event (a pod sent an out-of-window segment on each of its connections,
kubernetes#74839) the verdict is the named part `out-of-window`, and a held TCP connection to
that pod asked then counts as the coverage feature `out-of-window`.

Connections go only to Services without ClientIP affinity: opening one is a new connection
from the client's address, which would refresh the client's affinity and so change what the
affinity checks expect. A target without `ConnectionHolder` (the kube target) holds none and
the property is not judged there.

A Service whose port is UDP gets held *flows* instead (`ConnectionHolder.hold` on such a
Service): one socket each with a fixed 5-tuple, kept whatever it got (a flow refused while its
Service had no endpoints must reach the endpoints it gets later, kubernetes#48370), following
its endpoint to another once that endpoint is no longer usable, forgotten only when no Service
holds its VIP and port any more; judged by `harness.checks.udp_flows`. A judged flow after a
change counts as the coverage feature `udp-flow-through-change`.

A UDP NodePort or LoadBalancer Service also gets up to `MAX_NODE_PORT_HELD` flows from the
external client (on a target that holds them: `hold_node_port`, the model and the local cluster
with an external client, `harness.externalclients.external_nodes`), each to one node's address on
the node port, from a fixed source port (upstream's conntrack e2e "should be able to preserve UDP
traffic when server pod cycles for a NodePort service"), judged as a held ClusterIP flow with
that node's expectation from outside (`expect_external`: under Local only its own endpoints);
the flow belongs to the Service that holds its node port now. A proxy that deletes conntrack
entries by VIP only leaves such a flow on a removed endpoint (kubernetes#59368).

A held connection or flow belongs to the Service that holds its VIP and port now (`_owner`), not
to a name: a Service deleted and created again on another VIP no longer holds its old flows, and
one given that VIP meanwhile (within one `UnobservedChanges` batch) does.

Deterministic given the sequence (Services by name, clients in order), so a replay holds the
same connections.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from harness.checks.connections import OUT_OF_WINDOW, HeldAnswer, check_long_lived
from harness.checks.udp_flows import UDP
from harness.checks.verdict import Verdict
from harness.events import Event, OutOfWindow, Probe, RestartProxy, StaleSnapshot, Wait
from harness.externalclients import external_nodes
from harness.model.endpoints import Expectation, expect, expect_external
from harness.model.objects import Affinity, Backend, Service, opt_out_label
from harness.model.state import ClusterState
from harness.targets.base import ConnectionHolder
from harness.traffic import CLIENTS

MAX_HELD = 8
"""Connections held at once. Eight, so that a data plane that re-balances every established
flow between two endpoints (a conntrack flush) leaves all of them on their backend with
probability 1/256 only, and a counterexample reproduces."""
MAX_UDP_HELD = 4
"""UDP flows held at once, besides the TCP connections: enough that a proxy which keeps a removed
endpoint's entries (or flushes a usable one's) shows it on some flow of the endpoint changed."""
GONE_TIMEOUT_S = 0.2
"""How long a connection whose pod is gone is asked: nothing can answer it but another backend
(a data plane that moved it), which answers within milliseconds here; silence is its right
outcome, and waiting a whole request timeout for it cost up to `MAX_HELD` seconds a step.
Connections to an opted-out Service (I13: its rules are gone, as if deleted) are asked as briefly:
their own backend may still answer through conntrack within milliseconds, or the node's sink
drops them; neither is judged a spurious drop, since the backend is no longer usable."""
MAX_NODE_PORT_HELD = 2
"""UDP flows from outside to node ports held at once, besides the others: one per node on the
local cluster's two, so a flow masqueraded to another node's endpoint is held too."""
PORT = "http"
FEATURE = "long-lived-through-change"
OUT_OF_WINDOW_FEATURE = "out-of-window"
UDP_FEATURE = "udp-flow-through-change"
NO_BACKEND = Backend("", "")
"""The backend of a held UDP flow that has never been answered."""
RELAY_RESTARTED = (
    "the proxy relays connections through its own process (relays_connections), so they end"
    " with it when it restarts, as kube-proxy's userspace mode's did"
)
STALE_SHOWN = (
    "the proxy was shown a stale snapshot, which may lack a held connection's endpoint: it was"
    " told that endpoint was gone (a connection may then be closed, never moved)"
)


@dataclass(frozen=True)
class _Held:
    number: int
    service: str
    client: str
    backend: Backend
    opened_step: int
    udp: bool = False
    flow: HeldFlow = (None, None, None)  # `_flow` when it was opened
    node: str | None = None
    """A flow from outside to this node's node port (`flow` is then (None, node port, None))."""


class LongLived:
    """The connections one example holds (module docstring); `reset` between examples."""

    def __init__(self, target: object, timeout_s: float) -> None:
        self.target = target if isinstance(target, ConnectionHolder) else None
        self.timeout_s = timeout_s
        self.held: list[_Held] = []
        self.opened = 0

    def reset(self) -> None:
        """Close every held connection (before the target's own reset)."""
        if self.target is not None and self.held:
            self.target.release_held()
        self.held = []
        self.opened = 0

    def after(
        self, step: int, event: Event, after: ClusterState
    ) -> tuple[list[Verdict], frozenset[str]]:
        """Judge the held connections after step `step`, then open new ones. The verdict (none
        when nothing was held) and the coverage feature it checked (a change other than a
        probe or a wait)."""
        if self.target is None:
            return [], frozenset()
        verdicts: list[Verdict] = []
        features: frozenset[str] = frozenset()
        if self.held:
            udp = any(h.udp for h in self.held)
            asked = list(self.held)
            verdicts.append(self._judge(event, after))
            if not isinstance(event, Probe | Wait):
                features = frozenset({FEATURE, UDP_FEATURE} if udp else {FEATURE})
            if isinstance(event, OutOfWindow) and any(
                h.backend.pod == event.pod and not h.udp for h in asked
            ):
                features |= {OUT_OF_WINDOW_FEATURE}
        self._open(step, after)
        return verdicts, features

    def _judge(self, event: Event, after: ClusterState) -> Verdict:
        assert self.target is not None
        answers = []
        for held in self.held:
            if held.udp:
                answers.append(self._ask_flow(held, after))
                continue
            owner = _owner(held, after)
            same_flow = owner is not None and _same_flow(
                held.flow, _flow(after, owner, held.backend)
            )
            brief = not _alive(after, held.backend) or not same_flow
            brief = brief or owner is None or _opted_out(after, owner)
            timeout_s = GONE_TIMEOUT_S if brief else self.timeout_s
            outcome = self.target.ask_held(held.number, timeout_s)
            usable = (
                owner is not None
                and held.backend in expect(after, owner, PORT).usable
                and same_flow
            )
            answers.append(
                HeldAnswer(
                    held.service, held.client, held.backend, outcome, usable, held.opened_step
                )
            )
        self.held = [
            kept
            for h, a in zip(self.held, answers, strict=True)
            if (kept := _still_held(h, a, after)) is not None
        ]
        relayed = isinstance(event, RestartProxy) and self.target.relays_connections
        excused = RELAY_RESTARTED if relayed else None
        if isinstance(event, StaleSnapshot):
            excused = STALE_SHOWN
        part = OUT_OF_WINDOW if isinstance(event, OutOfWindow) else None
        return check_long_lived(answers, excused, part)

    def _ask_flow(self, held: _Held, after: ClusterState) -> HeldAnswer:
        """Ask a held UDP flow once: with the full timeout while its Service has usable
        endpoints (an answer is due), else briefly (REJECT answers at once; DROP never)."""
        assert self.target is not None
        owner = _owner(held, after)
        usable_now = frozenset(_expected(after, owner, held.node).usable) if owner else frozenset()
        timeout_s = self.timeout_s if usable_now else GONE_TIMEOUT_S
        outcome = self.target.ask_held(held.number, timeout_s)
        return HeldAnswer(
            held.service,
            held.client,
            held.backend,
            outcome,
            held.backend in usable_now,
            held.opened_step,
            UDP,
            usable_now,
        )

    def _open(self, step: int, after: ClusterState) -> None:
        """Open TCP connections up to `MAX_HELD`, then UDP flows up to `MAX_UDP_HELD`."""
        self._open_kind(step, after, udp=False, limit=MAX_HELD)
        self._open_kind(step, after, udp=True, limit=MAX_UDP_HELD)
        self._open_node_ports(step, after)

    def _open_node_ports(self, step: int, after: ClusterState) -> None:
        """Open flows from outside to UDP node ports up to `MAX_NODE_PORT_HELD`, where the
        target holds them (module docstring)."""
        hold = getattr(self.target, "hold_node_port", None)
        nodes = external_nodes(self.target)
        if not callable(hold) or not nodes:
            return
        while sum(1 for h in self.held if h.node is not None) < MAX_NODE_PORT_HELD:
            found = self._next_node_port(after, nodes)
            if found is None:
                return
            service, node, node_port = found
            self.opened += 1
            number, outcome = hold(service, node, self.timeout_s)
            if number is None:
                return
            backend = outcome.backend or NO_BACKEND
            client = f"external at {node}'s node port"
            flow: HeldFlow = (None, node_port, None)
            self.held.append(_Held(number, service, client, backend, step, True, flow, node))
            if outcome.backend is None:
                return

    def _next_node_port(
        self, after: ClusterState, nodes: tuple[str, ...]
    ) -> tuple[str, str, int] | None:
        """The eligible UDP node-port Service with the fewest held flows from outside (by name
        on a tie), a node its node port connects at (the nodes in turn, by the flows opened so
        far, first without one held there), and its node port; None when there is none."""
        held_at = {(h.service, h.node) for h in self.held if h.node is not None}
        eligible = []
        for name, service in sorted(after.services.items()):
            node_port = _udp_node_port(service)
            if node_port is None or service.session_affinity != Affinity.NONE:
                continue
            if opt_out_label(service) is not None:
                continue
            turn = self.opened % len(nodes)
            usable = [
                n
                for n in (*nodes[turn:], *nodes[:turn])
                if (name, n) not in held_at and expect_external(after, name, PORT, n).usable
            ]
            if usable:
                eligible.append((name, usable[0], node_port))
        if not eligible:
            return None
        return min(
            eligible, key=lambda e: sum(1 for h in self.held if h.service == e[0] and h.node)
        )

    def _open_kind(self, step: int, after: ClusterState, udp: bool, limit: int) -> None:
        assert self.target is not None
        while sum(1 for h in self.held if h.udp == udp) < limit:
            service = self._next_service(after, udp)
            if service is None:
                return
            client = CLIENTS[self.opened % len(CLIENTS)]
            self.opened += 1
            number, outcome = self.target.hold(service, client, self.timeout_s)
            if number is None or (outcome.backend is None and not udp):
                return  # a data plane that fails a new connection now gets no more this step
            backend = outcome.backend or NO_BACKEND
            flow = _flow(after, service, backend)
            self.held.append(_Held(number, service, client, backend, step, udp, flow))
            if outcome.backend is None:
                return

    def _next_service(self, after: ClusterState, udp: bool) -> str | None:
        """The eligible Service (TCP or UDP) with the fewest held connections (by name on a
        tie)."""
        eligible = [
            name
            for name, service in sorted(after.services.items())
            if service.session_affinity == Affinity.NONE
            and _is_udp(after, name) == udp
            and not _is_sctp(after, name)
            and expect(after, name, PORT).usable
        ]
        if not eligible:
            return None
        return min(eligible, key=lambda name: sum(1 for h in self.held if h.service == name))


HeldFlow = tuple[str | None, int | None, int | None]
"""A held connection's flow as the model sees it: the Service's VIP, its port number on `PORT`
and the backend's endpoint port (None: no such Service or port, or no destination now)."""


def _flow(state: ClusterState, service: str, backend: Backend) -> HeldFlow:
    """The flow a connection to `service` on `PORT` through `backend` uses in `state`."""
    found = state.services.get(service)
    vip = found.cluster_ip if found else None
    port = next((p.port for p in found.ports if p.name == PORT), None) if found else None
    destination = next(
        (d.port for d in expect(state, service, PORT).destinations if d.backend == backend), None
    )
    return vip, port, destination


def _same_flow(opened: HeldFlow, now: HeldFlow) -> bool:
    """Whether a connection opened on flow `opened` is still on a programmed flow: the same VIP
    and Service port number, and the backend, if still a destination, on the same endpoint port.
    One whose port's number or targetPort changed (`SetServicePort`, issue 12), or whose VIP no
    Service holds any more (`_owner`), is on a flow the proxy no longer programs: like a removed
    endpoint's, it may end, and must not move."""
    return opened[:2] == now[:2] and (now[2] is None or now[2] == opened[2])


def _owner(held: _Held, state: ClusterState) -> str | None:
    """The Service that holds `held`'s flow in `state`: the one on the VIP the flow was opened
    to with a `PORT` of the flow's protocol and port number, whatever its name (None: no
    Service does). A Service deleted and created again on another VIP no longer holds its old
    flows, and one given that VIP meanwhile (within one `UnobservedChanges` batch) holds them:
    the proxy programs the VIP for it, and kube-proxy keeps every flow to an endpoint it still
    serves."""
    vip, port, _ = held.flow
    if held.node is not None:  # a flow from outside: whichever Service holds its node port
        return next(
            (n for n, s in sorted(state.services.items()) if _udp_node_port(s) == port), None
        )
    for name, service in sorted(state.services.items()):
        if service.cluster_ip == vip and any(
            p.name == PORT and p.port == port and (p.protocol == UDP) == held.udp
            for p in service.ports
        ):
            return name
    return None


def _udp_node_port(service: Service) -> int | None:
    """The node port of `service`'s UDP port `PORT` (None: it has none, or it is TCP)."""
    if not service.type.external:
        return None
    return next((p.node_port for p in service.ports if p.name == PORT and p.protocol == UDP), None)


def _expected(state: ClusterState, service: str, node: str | None) -> Expectation:
    """Where a held flow's next datagram may go: the Service's expectation from the clients,
    or from outside at `node`'s node port (none while the Service is opted out: its node port
    is not programmed, and its entries were deleted)."""
    if node is None:
        return expect(state, service, PORT)
    if _opted_out(state, service):
        return Expectation(None, (), ())
    return expect_external(state, service, PORT, node)


def _opted_out(state: ClusterState, service: str) -> bool:
    found = state.services.get(service)
    return found is not None and opt_out_label(found) is not None


def _is_udp(state: ClusterState, service: str) -> bool:
    return any(p.protocol == UDP for p in state.service(service).ports if p.name == PORT)


def _is_sctp(state: ClusterState, service: str) -> bool:
    """An SCTP Service: no connection is held to it (a probe is one INIT, `harness.local.sctp`)."""
    return any(p.protocol == "SCTP" for p in state.service(service).ports if p.name == PORT)


def _still_held(held: _Held, answer: HeldAnswer, after: ClusterState) -> _Held | None:
    """What is held after an answer: a TCP connection while its backend answers; a UDP flow
    while its Service exists, now last answered by whoever answered, or by nobody when nothing
    answered and its backend is not usable (a correct proxy deleted the flow's entry, so once
    endpoints are usable again any of them may take it: after scaling to 0 and back, an
    unready pod ready again, an opt-out label removed)."""
    if not held.udp:
        return held if answer.outcome.backend == held.backend else None
    if _owner(held, after) is None:
        return None
    answered = answer.outcome.backend
    if answered is None:
        gone = held.backend not in answer.usable_now
        return replace(held, backend=NO_BACKEND) if gone else held
    return held if answered == held.backend else replace(held, backend=answered)


def _alive(state: ClusterState, backend: Backend) -> bool:
    """Whether `backend`'s pod incarnation still runs (it may be terminating): it exists, is
    the same incarnation and has not ended."""
    pod = state.pods.get(backend.pod)
    return pod is not None and pod.uid == backend.uid and not pod.phase.terminal
