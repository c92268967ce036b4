"""The traffic vocabulary: what a client sends and what it saw.

Shared by every layer (checks, proxies, the local cluster, the kube target, targets), so it sits at
the bottom of the house beside the events and the model's objects, and imports nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from harness.model.objects import Backend

CLIENTS = ("client-1", "client-2", "client-3")


class ErrorKind(StrEnum):
    """How a request failed. `refused` is the REJECT a Service without endpoints must give."""

    REFUSED = "refused"
    RESET = "reset"
    TIMEOUT = "timeout"
    OTHER = "other"


VIA_LOAD_BALANCER_SOURCES = (
    "a connection via a load balancer leaves from the external client's address for its node:"
    " use sources=(0,)"
)
"""The one line a target refuses `via_load_balancer` with further source addresses with."""

EXTERNAL_IP_AND_LOAD_BALANCER = (
    "a request goes to an ingress IP (via_load_balancer) or to an external IP (external_ip),"
    " not both: set one"
)
"""The one line a target refuses a request setting both with."""


@dataclass(frozen=True)
class TrafficRequest:
    """A bounded batch: `count` requests from `client` to `service`'s port `port`.

    With `keep_alive` False every request opens a fresh TCP connection (the mode for correctness
    and fairness: a backend is chosen per connection). With `keep_alive` True the batch opens
    `connections` connections at its start and spreads the requests over them. No request may
    take longer than `timeout_s`; the whole batch is bounded by `count * timeout_s`.

    `sources`: fresh request i leaves from the client's source address number
    `sources[i mod len(sources)]` (address 0 is the client's own; the others are further
    addresses of the same client, each a client of its own for ClientIP affinity). A target
    offers addresses 0 to `max_sources - 1`; kept-alive batches use the first source only.
    `time_limit_s`: no new request starts once the batch has run this long, so a batch against a
    data plane that drops every packet ends early; its sample then holds fewer than `count`
    outcomes. `parallel` (fresh requests only): the requests may be sent all at once instead of
    one after another, so that a batch whose connections are expected to be dropped costs one
    `timeout_s`, not `count` of them (a target may ignore it and send them in turn).
    `client_pod`: send from inside this pod's own network namespace instead (a pod as the
    client, from its pod IP; `client` and `sources` other than (0,) do not apply); a target
    that cannot (`PodClients`) refuses it.
    `client_node`: send from this node's host network instead (a hostNetwork client, from the
    node's own address, through that node's proxy; `client` and `sources` other than (0,) do
    not apply); only a target with that node (`node_names`) takes it, others refuse it.
    `external_node`: send from the external client instead (a client on the nodes' network,
    outside every node and pod) to this node's own address on the Service port's node port
    (`ServicePort.node_port`), so the connection meets that node's proxy as NodePort traffic
    does; `client` does not apply, `sources` number the external client's addresses. A target
    without an external client (`external_address` None) refuses it.
    `via_load_balancer` (with `external_node`): send to the Service's LoadBalancer ingress IP on
    the Service port instead, handed to `external_node` as a cloud or MetalLB load balancer
    hands a packet to one node: from the external client's address for that node
    (`load_balancer_source(node)`, which routes the ingress range via that node alone), so
    `sources` other than (0,) do not apply. A target without a route to the ingress IP, or for a
    Service without one, refuses it.
    `external_ip` (with `external_node`; not with `via_load_balancer`): send to that
    externalIP of the Service (`Service.external_ips`) on the Service port instead, handed to
    `external_node` from the same per-node address as via a load balancer (the external
    client routes the externalIP range as it routes ingress IPs), so `sources` other than (0,)
    do not apply. A target without a route to externalIPs refuses it; an address the Service
    does not list is sent all the same (nothing is programmed there: no answer).
    `to_node_port` (with `client_pod`): send to this node's own address on the Service port's
    node port instead of the VIP (a pod's traffic to a node port: implementation-defined,
    recorded and not judged, `harness.podnodeports`); only a target that
    `records_pod_node_ports` takes it.
    `removed_port`: (number, protocol) of a port the Service no longer has, asked on its VIP
    instead of the named `port` (that no pod answers there once the change is programmed);
    only a target that `addresses_removed_ports` takes it.
    """

    service: str
    client: str = CLIENTS[0]
    count: int = 10
    keep_alive: bool = False
    connections: int = 1
    port: str = "http"
    timeout_s: float = 2.0
    sources: tuple[int, ...] = (0,)
    time_limit_s: float | None = None
    parallel: bool = False
    client_pod: str | None = None
    client_node: str | None = None
    external_node: str | None = None
    removed_port: tuple[int, str] | None = None
    via_load_balancer: bool = False
    external_ip: str | None = None
    to_node_port: str | None = None


@dataclass(frozen=True)
class Outcome:
    """One request: the backend that answered (pod and incarnation) or the error, its latency,
    the index of the connection it used within its batch, the source address it left from
    (an index into the client's addresses, see `TrafficRequest.sources`), and `seen_source`, the
    address the answering pod saw the connection come from (after any NAT), when the target
    knows it (None: not known)."""

    backend: Backend | None
    error: ErrorKind | None
    latency_ms: float
    connection: int
    source: int = 0
    seen_source: str | None = None


@dataclass(frozen=True)
class TrafficSample:
    """What a batch saw, in send order, with the target-clock times it started and finished."""

    request: TrafficRequest
    outcomes: tuple[Outcome, ...]
    started_s: float
    finished_s: float
    refusals_unseen: str | None = None
    """Why this client cannot see a REJECT (it times out instead), or None: the kube target's
    SCTP dial (`harness.kube.sctp`), whose socket gets the ICMP port unreachable as a soft
    error only. `reject-when-empty` then takes a timeout as a possible refusal and says so."""

    def hits(self) -> Counter[Backend]:
        return Counter(o.backend for o in self.outcomes if o.backend is not None)

    def errors(self) -> Counter[ErrorKind]:
        return Counter(o.error for o in self.outcomes if o.error is not None)

    @property
    def total(self) -> int:
        return len(self.outcomes)


@dataclass(frozen=True)
class Tally:
    """What a counting batch saw: answers per backend and failures per kind, without order or
    latency (`Target.tally`: hundreds of thousands of fresh connections, counted at the pods)."""

    request: TrafficRequest
    answered: Counter[Backend]
    failed: Counter[ErrorKind]
    started_s: float
    finished_s: float

    def hits(self) -> Counter[Backend]:
        return self.answered

    def errors(self) -> Counter[ErrorKind]:
        return self.failed

    @property
    def total(self) -> int:
        return sum(self.answered.values()) + sum(self.failed.values())


Counted = TrafficSample | Tally
"""Either kind of observation the count-based checks (stale traffic, availability, fairness)
judge."""


@dataclass(frozen=True)
class Reachability:
    """The exact data-plane answer for a new connection, read from programmed state, not traffic.

    `probabilities` maps each backend a new connection can reach to the probability that it does;
    `rejects` is True when a new connection is refused, `drops` when one is dropped (no answer).
    `detail` says where it was read from.
    """

    rejects: bool
    probabilities: Mapping[Backend, float] = field(default_factory=dict)
    detail: str = ""
    drops: bool = False


@dataclass(frozen=True)
class HealthCheckRequest:
    """One HTTP GET from the external client to `node`'s own address on `port`: a Service's
    healthCheckNodePort (or a port one had), as a cloud load balancer's health check asks it
    (issue 11 item 3, I9). No answer within `timeout_s` is a timeout. A target that cannot send
    it has no `health_check` method (`harness.healthchecks.unavailable`)."""

    node: str
    port: int
    timeout_s: float = 1.0


@dataclass(frozen=True)
class HealthCheckReply:
    """What one health check got: the HTTP `status` (None when no HTTP answer came: `error`
    says how it failed), the JSON `body` (None when the body was not a JSON object), whether
    the `X-Content-Type-Options: nosniff` header came, and `detail`, one line for evidence
    (the failure, or what was malformed)."""

    request: HealthCheckRequest
    status: int | None
    error: ErrorKind | None = None
    body: Mapping[str, object] | None = None
    nosniff: bool = False
    detail: str = ""

    @property
    def local_endpoints(self) -> int | None:
        """The body's `localEndpoints` (None when absent or not an integer)."""
        found = (self.body or {}).get("localEndpoints")
        return found if isinstance(found, int) and not isinstance(found, bool) else None

    @property
    def service(self) -> tuple[str, str] | None:
        """The body's `service` as (namespace, name) (None when absent or malformed)."""
        found = (self.body or {}).get("service")
        if not isinstance(found, Mapping):
            return None
        namespace, name = found.get("namespace"), found.get("name")
        return (namespace, name) if isinstance(namespace, str) and isinstance(name, str) else None
