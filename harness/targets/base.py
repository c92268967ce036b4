"""The Target contract: a whole system under test, driven one event at a time.

A Target is Jepsen's client: the runner applies each event to the model and to the target, waits
(bounded) for the target to converge, observes it and hands the observation to the checks. A target
never judges itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from harness.clock import Clock
from harness.events import Event
from harness.model.objects import Backend, EndpointSlice

CLIENTS = ("client-1", "client-2", "client-3")


class ErrorKind(StrEnum):
    """How a request failed. `refused` is the REJECT a Service without endpoints must give."""

    REFUSED = "refused"
    RESET = "reset"
    TIMEOUT = "timeout"
    OTHER = "other"


@dataclass(frozen=True)
class TrafficRequest:
    """A bounded batch: `count` requests from `client` to `service`'s port `port`.

    With `keep_alive` False every request opens a fresh TCP connection (the mode for correctness
    and fairness: a backend is chosen per connection). With `keep_alive` True the batch opens
    `connections` connections at its start and spreads the requests over them. No request may
    take longer than `timeout_s`; the whole batch is bounded by `count * timeout_s`.
    """

    service: str
    client: str = CLIENTS[0]
    count: int = 10
    keep_alive: bool = False
    connections: int = 1
    port: str = "http"
    timeout_s: float = 2.0


@dataclass(frozen=True)
class Outcome:
    """One request: the backend that answered (pod and incarnation) or the error, its latency,
    and the index of the connection it used within its batch."""

    backend: Backend | None
    error: ErrorKind | None
    latency_ms: float
    connection: int


@dataclass(frozen=True)
class TrafficSample:
    """What a batch saw, in send order, with the target-clock times it started and finished."""

    request: TrafficRequest
    outcomes: tuple[Outcome, ...]
    started_s: float
    finished_s: float

    def hits(self) -> Counter[Backend]:
        return Counter(o.backend for o in self.outcomes if o.backend is not None)

    def errors(self) -> Counter[ErrorKind]:
        return Counter(o.error for o in self.outcomes if o.error is not None)


@dataclass(frozen=True)
class Reachability:
    """The exact data-plane answer for a new connection, read from programmed state, not traffic.

    `probabilities` maps each backend a new connection can reach to the probability that it does;
    `rejects` is True when a new connection is refused. `detail` says where it was read from.
    """

    rejects: bool
    probabilities: Mapping[Backend, float] = field(default_factory=dict)
    detail: str = ""


class Target(Protocol):
    """A system under test.

    Obligations, in the manner of Jepsen's Client protocol:

    - `open()` prepares the system (creates namespaces, connects to a cluster). It must not create
      any Service or pod; the system starts empty. It may take seconds. Everything it creates is
      named with the target's run prefix so that `harness clean` can find leftovers.
    - `apply(event)` makes the change the event describes, exactly as the model's `event.apply`
      does, and returns once the change was *requested* (written to the API, handed to the proxy);
      it must not wait for the data plane to reflect it - the runner measures that. For `Wait`
      events the runner has already let the time pass on `clock`; the target ends the grace
      periods that ran out. For `Probe` events the target does nothing. It must change nothing
      outside the system under test.
    - `endpoint_slices(service)` observes the EndpointSlices the target currently publishes for a
      Service, converted to the model's form. Observing changes nothing.
    - `send(request)` sends one bounded batch of requests and reports every outcome. It changes no
      cluster state, and returns within `request.count * request.timeout_s` plus a small overhead.
    - `close()` removes everything `open()` and `apply()` created, also after errors; calling it
      twice is harmless. It leaves nothing behind.
    - `reset()` (optional) returns the system to the empty state `open()` left, faster than
      `close()` and `open()`: every pod and Service is gone and allocation (addresses, pod
      incarnations) starts again as in a fresh `ClusterState`. Targets without it are closed and
      reopened between examples.
    - `clock` is the time the target lives in; the runner reads time only from it.
    """

    @property
    def name(self) -> str: ...

    @property
    def clock(self) -> Clock: ...

    def open(self) -> None: ...

    def apply(self, event: Event) -> None: ...

    def endpoint_slices(self, service: str) -> tuple[EndpointSlice, ...]: ...

    def send(self, request: TrafficRequest) -> TrafficSample: ...

    def close(self) -> None: ...


@runtime_checkable
class RuleOracle(Protocol):
    """Optional: a target whose data plane can be read back exactly (rules, maps, config).

    `reachability(service, port, client)` computes, from what is programmed right now (for example
    `iptables-save` or `nft -j list ruleset` read from the kernel), where a new connection from
    `client` to the Service port goes. It sends no traffic and changes nothing.
    """

    def reachability(self, service: str, port: str, client: str) -> Reachability: ...
