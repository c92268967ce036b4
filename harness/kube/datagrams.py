"""Where the kube target's UDP requests leave from: the client pods, or the local namespaces.

- `PodDatagrams` (`--pods cluster`): the bounded nc loop of `harness.kube.udp`, exec'd in the
  client pod `request.client` names (`harness-client-N`); a held flow is a source port of its
  own (`harness.local.udp.held_port`) asked again by a later exec from the same pod, so its
  5-tuple, and with it its conntrack entry, is the same every time (also from a hostNetwork
  client pod to another node's node port: `hold_from`).
- `NamespaceDatagrams` (`--pods local`): the kubelet-less mode runs its clients as the local
  cluster's client namespaces, whose machine need not have `nc`; the local cluster's own UDP
  client (`harness.local.traffic.ClientAgent`, one per client namespace, started on first use)
  sends there, as the local target does, and reads the local pod server's `POD UID ADDRESS`.

Both send only to the address given (a ClusterIP of the run) and change nothing but their own
sockets; `close` ends what they started.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from harness.clock import Clock
from harness.errors import EnvironmentProblem, UsageError
from harness.kube.traffic import Exec
from harness.kube.udp import UDP, send_batch
from harness.local.udp import held_port
from harness.traffic import ErrorKind, Outcome, TrafficRequest, TrafficSample


class PodDatagrams:
    """UDP from client pods through `exec_function` (module docstring); `pod_name(client)` is
    the pod a client's requests leave from (UsageError for an unknown client)."""

    def __init__(self, exec_function: Exec, pod_name: Callable[[str], str], clock: Clock) -> None:
        self._exec = exec_function
        self._pod_name = pod_name
        self._clock = clock
        self._numbers = itertools.count()
        self._held: dict[int, tuple[str, int, str, int]] = {}  # pod, source port, address, port

    def send(self, request: TrafficRequest, address: str, port: int) -> TrafficSample:
        """One batch of fresh flows from `request.client`'s pod to `address:port`."""
        pod = self._pod_name(request.client)
        return send_batch(self._exec, pod, request, address, port, self._clock, UDP)

    def hold(self, client: str, address: str, port: int, timeout_s: float) -> tuple[int, Outcome]:
        """Open a held flow from `client`'s pod to `address:port` from a source port of its
        own, ask once: its number and the outcome (kept whatever it got)."""
        return self.hold_from(self._pod_name(client), address, port, timeout_s)

    def hold_from(self, pod: str, address: str, port: int, timeout_s: float) -> tuple[int, Outcome]:
        """`hold` from the pod `pod` itself (a hostNetwork client, to a node port)."""
        number = next(self._numbers)
        self._held[number] = (pod, held_port(number), address, port)
        return number, self.ask_held(number, timeout_s)

    def ask_held(self, number: int, timeout_s: float) -> Outcome:
        """Ask held flow `number` once more, from its source port (RESET for an unknown one)."""
        found = self._held.get(number)
        if found is None:
            return Outcome(None, ErrorKind.RESET, 0.0, number)
        pod, source_port, address, port = found
        request = TrafficRequest("held", count=1, timeout_s=timeout_s)
        sample = send_batch(
            self._exec, pod, request, address, port, self._clock, UDP, ports=[source_port]
        )
        (outcome,) = sample.outcomes
        return Outcome(outcome.backend, outcome.error, outcome.latency_ms, number)

    def release_held(self) -> None:
        """Forget every held flow (nothing stays open between asks)."""
        self._held.clear()

    def close(self) -> None:
        self.release_held()


class NamespaceDatagrams:
    """UDP from the local cluster's client namespaces (module docstring); `netns_of(client)`
    names a client's namespace (None: unknown client, UsageError)."""

    def __init__(self, netns_of: Callable[[str], str | None], clock: Clock) -> None:
        self._netns_of = netns_of
        self._clock = clock
        self._agents: dict[str, Any] = {}
        self._held: dict[int, tuple[str, int]] = {}  # client, the agent's number
        self._numbers = itertools.count()

    def _agent(self, client: str) -> Any:
        agent = self._agents.get(client)
        if agent is None:
            from harness.local.traffic import ClientAgent

            netns = self._netns_of(client)
            if not netns:
                raise UsageError(f"unknown client {client!r}: it has no client namespace")
            agent = ClientAgent(netns)
            agent.start()
            self._agents[client] = agent
        return agent

    def send(
        self, request: TrafficRequest, address: str, port: int, protocol: str = "udp"
    ) -> TrafficSample:
        """One batch of fresh flows from `request.client`'s namespace to `address:port`; with
        `protocol` "sctp" (the kube target's `--pods local` SCTP) fresh associations, as the
        local target sends them (`harness.local.traffic.Batch`)."""
        from harness.local.traffic import Batch

        batch = Batch(
            address,
            port,
            request.count,
            timeout_s=request.timeout_s,
            time_limit_s=request.time_limit_s,
            parallel=request.parallel and not request.keep_alive,
            protocol=protocol,
        )
        started_s = self._clock.now()
        outcomes = self._agent(request.client).run(batch)
        return TrafficSample(request, tuple(outcomes), started_s, self._clock.now())

    def hold(self, client: str, address: str, port: int, timeout_s: float) -> tuple[int, Outcome]:
        """Open a held flow from `client`'s namespace (`ClientAgent.hold_udp`)."""
        agent_number, outcome = self._agent(client).hold_udp(address, port, timeout_s)
        number = next(self._numbers)
        self._held[number] = (client, agent_number)
        return number, Outcome(outcome.backend, outcome.error, outcome.latency_ms, number)

    def ask_held(self, number: int, timeout_s: float) -> Outcome:
        found = self._held.get(number)
        if found is None:
            return Outcome(None, ErrorKind.RESET, 0.0, number)
        client, agent_number = found
        outcome = self._agent(client).ask_held(agent_number, timeout_s)
        return Outcome(outcome.backend, outcome.error, outcome.latency_ms, number)

    def release_held(self) -> None:
        self._held.clear()
        for agent in self._agents.values():
            agent.release_held()

    def close(self) -> None:
        """Stop every agent (closing its flows). Idempotent."""
        agents, self._agents = self._agents, {}
        self._held.clear()
        problems = []
        for agent in agents.values():
            try:
                agent.close()
            except EnvironmentProblem as problem:
                problems.append(problem)
        if problems:
            raise problems[0]
