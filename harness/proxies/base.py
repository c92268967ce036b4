"""The Proxy contract: a data plane plugged into the local cluster.

A proxy is fed the way kube-proxy's `Provider` (pkg/proxy/types.go) and kpng's backend sink are
fed: Service and EndpointSlice add/update/delete notifications, then `sync()`. Slices arrive with
their raw conditions (ready, serving, terminating, node), so a proxy decides itself which
endpoints new connections may use (`CategorizeEndpoints`) and, when none are usable, must REJECT
(no endpoints at all) or DROP (endpoints, none usable here: `has_any_endpoints`).

`TrackingProxy` keeps change tracking (what changed since the last sync) apart from programming
(`program`), as kube-proxy's ServiceChangeTracker and EndpointsChangeTracker do; most proxies
subclass it and only write `program`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

from harness.features import CORE_FEATURES
from harness.model.objects import EndpointSlice, Service, opt_out_label
from harness.traffic import Reachability


@dataclass(frozen=True)
class NodeContext:
    """Where a proxy runs.

    `node` is the node name the proxy serves (for internalTrafficPolicy=Local); `netns` is the
    node's network namespace, where all of the proxy's rules, sockets and processes must live;
    `prefix` starts the name of anything the proxy creates outside its process (so `harness clean`
    finds it); `workdir` is a private directory for configuration files, sockets and logs, removed
    after the run; `service_cidr` is the range Service VIPs are allocated from.
    """

    node: str
    netns: str
    prefix: str
    workdir: Path
    service_cidr: str = "10.96.0.0/16"


RELAYING_FEATURES: frozenset[str] = CORE_FEATURES | {
    "internal-traffic-policy",
    "long-lived-connections",
    "multi-port",
    "hairpin",
    "opt-out-labels",
    "node-port",
}
"""What the harness's proxies that relay connections through their own process (userspace,
nginx, haproxy) declare: node ports (`harness.proxies.listeners`), but not `source-ip` nor
`external-traffic-policy`, since pods see the proxy's address, nor `udp`, since they relay TCP
only."""
KERNEL_FEATURES: frozenset[str] = RELAYING_FEATURES | {
    "source-ip",
    "udp",
    "external-traffic-policy",
    "load-balancer",
    "health-check-node-port",
    "external-ips",
    "topology",
    "sctp",
}
"""What the harness's kernel-rule proxies (iptables, nftables) declare: as kube-proxy, they keep
the client's address (masquerading only hairpin traffic: KUBE-MARK-MASQ for `-s <endpoint IP>`
on each endpoint chain), translate UDP too, program node ports, LoadBalancer ingress IPs and
externalIPs with externalTrafficPolicy (`harness.proxies.iptables`, `harness.proxies.nftables`),
serve healthCheckNodePorts (`harness.proxies.healthcheck`), translate SCTP where the kernel
tracks it (`-p sctp -m sctp --dport`, nft `th dport` keyed by `sctp`: the rules are
protocol-generic, as kube-proxy's), and honour zone hints for the node's
zone (`topology`: `harness.model.endpoints.categorize_endpoints`, which the shared plan's
destinations come from)."""


class Proxy(Protocol):
    """A Service proxy under test.

    - `start(node)` starts the proxy in `node.netns` with an empty state (every Service without
      rules). It must not touch the root network namespace, nor any namespace but `node.netns`.
    - the `on_*` handlers record a change; they must be fast and must not program anything.
    - `sync()` programs the data plane to match every change recorded so far and returns once new
      connections see it (or raises). It may be called with nothing changed. A proxy that syncs
      later instead (at most once a period, as kube-proxy does) says so through
      `SyncReportingProxy.sync_state`, which the harness then waits on.
    - `stop()` removes every rule, process and file the proxy created; calling it twice is
      harmless. It must return within a few seconds even if the proxy hangs.
    - restart (`harness.events.RestartProxy`): the harness stops the proxy and starts a new
      instance in the same `node.netns`, then hands it every Service and slice. Starting must not
      disturb established connections to endpoints that are still usable (no conntrack flush).
      A proxy whose connections run through its own process says so with a class attribute
      `relays_connections = True` (they end with the process, as kube-proxy's userspace mode's
      did); kernel data planes keep them. A proxy that leaves its rules in place across the
      restart, as kube-proxy does, says so by being a `RuleKeepingProxy`; the harness then stops
      it with `stop_for_restart` instead of `stop` (`stop_for_restart(proxy)` below).
    - `features` (optional class attribute, a frozenset of `harness.features` names): the
      conformance features the proxy implements, every core one included; absent means core
      only. Declaring a feature is a claim: its failures are failures. An undeclared extended
      feature is reported as unsupported, never as passed (`harness.targets.base.target_features`).
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def start(self, node: NodeContext) -> None: ...

    def on_service_add(self, service: Service) -> None: ...

    def on_service_update(self, old: Service, new: Service) -> None: ...

    def on_service_delete(self, service: Service) -> None: ...

    def on_endpoint_slice_add(self, endpoint_slice: EndpointSlice) -> None: ...

    def on_endpoint_slice_update(self, old: EndpointSlice, new: EndpointSlice) -> None: ...

    def on_endpoint_slice_delete(self, endpoint_slice: EndpointSlice) -> None: ...

    def sync(self) -> None: ...

    def stop(self) -> None: ...


def slice_key(endpoint_slice: EndpointSlice) -> tuple[str, str]:
    return (endpoint_slice.service, endpoint_slice.name)


class SliceStore(dict[tuple[str, str], EndpointSlice]):
    """The slices a proxy holds, keyed by (Service, slice name), also indexed by Service, so
    that a sync reading every Service's slices (`of`) costs O(slices), not O(Services x slices)
    (a full sync of 5,000 Services spent 15 of its 18 s sorting every slice per Service).
    Changes go through `__setitem__`, `__delitem__`, `pop` and `clear`, which keep the index;
    nothing else of dict's writing methods may be used."""

    def __init__(self) -> None:
        super().__init__()
        self._by_service: dict[str, dict[str, EndpointSlice]] = {}

    def __setitem__(self, key: tuple[str, str], value: EndpointSlice) -> None:
        super().__setitem__(key, value)
        self._by_service.setdefault(key[0], {})[key[1]] = value

    def pop(self, key: tuple[str, str], default: Any = None) -> Any:
        found = super().pop(key, default)
        held = self._by_service.get(key[0])
        if held is not None:
            held.pop(key[1], None)
            if not held:
                del self._by_service[key[0]]
        return found

    def __delitem__(self, key: tuple[str, str]) -> None:
        self.pop(key)

    def clear(self) -> None:
        super().clear()
        self._by_service.clear()

    def of(self, service: str) -> tuple[EndpointSlice, ...]:
        """`service`'s slices, by slice name."""
        held = self._by_service.get(service, {})
        return tuple(held[name] for name in sorted(held))


class TrackingProxy(ABC):
    """Change tracking for proxies: keeps the current Services and slices and the set of
    Services changed since the last sync, then calls `program` with them.

    It is handed every Service, as a watch without kube-proxy's label selector delivers them,
    and filters once, here, for every proxy built on it: a Service carrying an opt-out label
    (`harness.model.objects.OPT_OUT_LABELS`; kube-proxy's `noProxyName` and
    `noHeadlessEndpoints` requirements, cmd/kube-proxy/app/server.go) never reaches `program`;
    to the data plane, labelling a Service deletes it and removing the label adds it again.
    `honours_opt_out` False (a disclosed mutant) programs them all."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    honours_opt_out: ClassVar[bool] = True

    def __init__(self) -> None:
        self.services: dict[str, Service] = {}
        self.slices = SliceStore()
        self.changed: set[str] = set()
        self.node: NodeContext | None = None

    # -- change tracking ----------------------------------------------------------------------
    def on_service_add(self, service: Service) -> None:
        self.services[service.name] = service
        self.changed.add(service.name)

    def on_service_update(self, old: Service, new: Service) -> None:
        self.on_service_add(new)

    def on_service_delete(self, service: Service) -> None:
        self.services.pop(service.name, None)
        self.changed.add(service.name)

    def on_endpoint_slice_add(self, endpoint_slice: EndpointSlice) -> None:
        self.slices[slice_key(endpoint_slice)] = endpoint_slice
        self.changed.add(endpoint_slice.service)

    def on_endpoint_slice_update(self, old: EndpointSlice, new: EndpointSlice) -> None:
        self.on_endpoint_slice_add(new)

    def on_endpoint_slice_delete(self, endpoint_slice: EndpointSlice) -> None:
        self.slices.pop(slice_key(endpoint_slice), None)
        self.changed.add(endpoint_slice.service)

    def slices_of(self, service: str) -> tuple[EndpointSlice, ...]:
        return self.slices.of(service)

    def watched(self) -> dict[str, Service]:
        """The Services this proxy programs: those a default proxy's informer lists (none
        carrying an opt-out label), or all of them when it does not honour the labels."""
        if not self.honours_opt_out:
            return dict(self.services)
        return {n: s for n, s in self.services.items() if opt_out_label(s) is None}

    # -- programming --------------------------------------------------------------------------
    def start(self, node: NodeContext) -> None:
        self.node = node

    def sync(self) -> None:
        changed, self.changed = self.changed, set()
        try:
            self.program(self.watched(), changed)
        except BaseException:
            self.changed |= changed  # not programmed: the next sync must try them again
            raise

    @abstractmethod
    def program(self, services: Mapping[str, Service], changed: set[str]) -> None:
        """Make the data plane match `services` and their slices (`slices_of`); only the
        Services named in `changed` differ from what was last programmed (a deleted Service is
        in `changed` but not in `services`)."""

    def stop(self) -> None:
        """Forget pending changes; subclasses extend this to remove what they created."""
        self.changed.clear()


@dataclass(frozen=True)
class SyncState:
    """What a proxy reports about its data plane: whether every change handed to it has been
    programmed (`synced`), and how that is known (`source`, one line for a verdict's evidence:
    the proxy's own counter, its sync reply, kube-proxy's sync metrics)."""

    synced: bool
    source: str


CONTRACT_SYNC = (
    "sync() returned, which the Proxy contract (and the external protocol's sync reply)"
    " promises only once new connections see every change handed over"
)
"""The evidence of a proxy that programs inside `sync()`: its return."""


class SyncReportingProxy(Protocol):
    """Optional, for proxies whose `sync()` only asks for a sync that happens later (kube-proxy's
    BoundedFrequencyRunner, `harness.proxies.bounded`): `sync_state()` says whether every change
    handed to the proxy so far has been programmed. It must be cheap, change nothing and never
    report True while a change handed over is not yet in the data plane."""

    def sync_state(self) -> SyncState: ...


class RuleReadingProxy(Protocol):
    """Optional, for rule-based proxies: the exact data-plane answer read back from the kernel.

    `reachability(service, port_name, client_ip)` reads what is programmed now (`iptables-save`,
    `nft -j list ruleset`, run inside the node namespace), traces a new TCP connection from
    `client_ip` to the Service's VIP and port through it, and returns every backend it can reach
    with its exact probability (the product of the statistic-random rules, or 1/modulus of a
    numgen vmap), or `rejects=True`. Backends are identified by mapping DNAT destinations to the
    pods of the current slices; a destination no slice lists maps to `Backend("?", "ip:port")`.
    It sends no traffic and changes nothing.
    """

    def reachability(self, service: Service, port_name: str, client_ip: str) -> Reachability: ...


class RuleKeepingProxy(Protocol):
    """Optional, for proxies that keep their data plane across a restart, as kube-proxy does:
    it exits without touching its rules (`CleanupLeftovers` runs only with `--cleanup`), and the
    new instance's first sync replaces them in one atomic transaction (iptables: one
    `iptables-restore --noflush` writing every chain it owns and deleting the stale ones;
    nftables: one `nft -f` that flushes its maps and chains and refills them, keeping the
    affinity sets). So a restart leaves no moment without rules, and the kernel's per-client
    state (xt_recent lists, nft affinity sets) and conntrack survive it.

    - `keeps_rules_on_restart` (a class attribute, True) is a claim the harness judges: ClientIP
      affinity and new connections are held to the same promises across a restart as across
      any unrelated change (`harness.runner`, `targets.base.keeps_proxy_state`).
    - `stop_for_restart()` ends the proxy's own processes, threads and pending changes like
      `stop()`, but must not remove, change or flush any rule, chain, map, set or conntrack
      entry in `node.netns`; harmless twice, and after it `stop()` is a no-op. What it leaves
      must be what a later instance's `start` adopts and first `sync` replaces, and what that
      instance's `stop()` (a reset, the target's close) and cleanup by prefix remove.
    - `start(node)` of such a proxy adopts whatever an earlier instance left in `node.netns`:
      it must not delete those rules (that is the window this contract forbids); until its first
      `sync()` they keep serving, and that first sync replaces every object the proxy owns
      (also a crashed run's leftovers) atomically.
    """

    keeps_rules_on_restart: ClassVar[bool]

    def stop_for_restart(self) -> None: ...


def keeps_rules_on_restart(proxy: object) -> bool:
    """Whether `proxy` declares that its rules survive a restart (`RuleKeepingProxy`)."""
    return bool(getattr(proxy, "keeps_rules_on_restart", False)) and callable(
        getattr(proxy, "stop_for_restart", None)
    )


def stop_for_restart(proxy: Proxy) -> None:
    """Stop `proxy` because a new instance is about to start on its node: its rules stay when it
    keeps them (`RuleKeepingProxy.stop_for_restart`), otherwise this is `proxy.stop()`."""
    if keeps_rules_on_restart(proxy):
        cast(RuleKeepingProxy, proxy).stop_for_restart()
    else:
        proxy.stop()
