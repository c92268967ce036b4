"""The `nftables` proxy: kube-proxy's nftables-mode layout, updated by incremental `nft -f`.

Layout (`pkg/proxy/nftables/proxier.go: setupNFTables`, `syncProxyRules`,
`writeServiceToEndpointRules`), in the table `ip <prefix>-kube-proxy`:

- base chains `nat-prerouting`/`nat-output` (dstnat) jump to `services`, which looks up
  `ip daddr . meta l4proto . th dport` in the verdict map `service-ips`; `filter-input`,
  `filter-forward`, `filter-output` (dstnat-10) jump on `ct state new` to
  `service-endpoints-check`, which looks the same key up in `no-endpoint-services`, whose
  elements `goto reject-chain` (`reject`) for Service ports without any endpoints and `drop` for
  those with endpoints of which none is usable here (internalTrafficPolicy=Local, endpoints only
  on other nodes), as kube-proxy's `no-endpoint-services` map does;
  `nat-postrouting` masquerades packets `mark-for-masquerade` marked (0x4000).
- `filter-forward` jumps to `forward`, which holds `ct state invalid drop` unless the node sets
  `nf_conntrack_tcp_be_liberal`, as `setupNFTables` writes it (kubernetes#74839, #117924:
  `harness.proxies.rules.invalid`).
- per Service port a chain `service-<hash>-ns/name/proto/port` (`local-...` for
  internalTrafficPolicy=Local): with ClientIP affinity first `ip saddr @affinity-<ep> goto
  endpoint-<ep>` per endpoint, then `numgen random mod n vmap { 0 : goto endpoint-..., ... }`.
- per endpoint a chain `endpoint-<hash>-ns/name/proto/port__ip/port`: hairpin masquerade mark,
  `update @affinity-<ep> { ip saddr }` with affinity, then `meta l4proto tcp dnat to ip:port`;
  affinity sets are `ipv4_addr` sets with flags dynamic,timeout and the Service's timeout.

Node ports (NodePort and LoadBalancer Services; `setupNFTables`, `syncProxyRules`):

- `services` ends with `fib daddr type local meta l4proto . th dport vmap @service-nodeports`,
  whose elements `proto . NODE_PORT : goto external-<base>` send traffic at any of the node's
  own addresses to the port's `external-` chain: under externalTrafficPolicy Cluster `jump
  mark-for-masquerade` (the pod sees a node's address) then `goto service-<base>` (every usable
  endpoint); under Local `goto local-<base>` (this node's endpoints, the client's address kept).
  kube-proxy's further rules there for the node's own and the pods' traffic are left out: that
  traffic is not judged.
- `filter-input` jumps on `ct state new` to `nodeport-endpoints-check`, which looks
  `meta l4proto . th dport` of locally addressed packets up in `no-endpoint-nodeports`:
  `goto reject-chain` for a node port whose Service has no endpoints, `drop` for one with
  endpoints but none for external traffic here ("has no local endpoints").

LoadBalancer ingress IPs (`syncProxyRules`, "Capture load-balancer ingress"): per ingress IP of a
Service port with external endpoints a `service-ips` element `LB_IP . proto . PORT : goto
external-<base>`, the node port's own chain (so externalTrafficPolicy applies alike); without
any, a `no-endpoint-services` element with the node port's verdict (`goto reject-chain`, or
`drop` under Local with endpoints elsewhere only), met from `filter-forward` on the forwarding
path. kube-proxy's `firewall-` chains for `loadBalancerSourceRanges` are left out.

externalIPs (`syncProxyRules`, "Capture externalIPs"; a Service of any type): per externalIP of
a Service port a `service-ips` element `EXT_IP . proto . PORT : goto external-<base>` while it
has external endpoints, else a `no-endpoint-services` element with the same verdict as an
ingress IP; a ClusterIP Service with externalIPs gets its `external-` chain without a node port.

Incremental sync: where kube-proxy flushes and refills its maps every sync, this proxy writes one
transaction with only the changed Services' chains, map elements and sets. Stale chains are
deleted in the same transaction after the elements that referenced them (kernels since 6.2 see
the references go at once; kube-proxy defers the delete for older kernels).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import ClassVar

from harness.proxies.base import KERNEL_FEATURES
from harness.proxies.rules.commands import run_in_netns, transaction_timeout_s
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.proxies.rules.nft_ruleset import parse_nft_json
from harness.proxies.rules.nft_trace import NftRuleset
from harness.proxies.rules.plan import PortPlan, name_hash
from harness.proxies.rules.rendering import EMPTY, Delta, Lines, Rendering

SERVICE_IPS = "service-ips"
NO_ENDPOINTS = "no-endpoint-services"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
NODEPORT_KEY = "meta l4proto . th dport"
REJECT_CHAIN = "reject-chain"
FORWARD_CHAIN = "forward"
DROP_INVALID = "ct state invalid drop"
MARK_MASQ = "mark-for-masquerade"
MASQUERADE_MARK = "0x4000"
DISPATCH_KEY = "ip daddr . meta l4proto . th dport"
BASE_CHAINS = (
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
)
JUMPS = (
    ("filter-input", "ct state new jump service-endpoints-check"),
    ("filter-input", "ct state new jump nodeport-endpoints-check"),
    ("filter-forward", "ct state new jump service-endpoints-check"),
    ("filter-forward", f"jump {FORWARD_CHAIN}"),
    ("filter-output", "ct state new jump service-endpoints-check"),
    ("nat-prerouting", "jump services"),
    ("nat-output", "jump services"),
    ("nat-postrouting", "jump masquerading"),
)
HELPER_RULES = (
    ("services", f"{DISPATCH_KEY} vmap @{SERVICE_IPS}"),
    ("services", f"fib daddr type local {NODEPORT_KEY} vmap @{SERVICE_NODEPORTS}"),
    ("service-endpoints-check", f"{DISPATCH_KEY} vmap @{NO_ENDPOINTS}"),
    (
        "nodeport-endpoints-check",
        f"fib daddr type local {NODEPORT_KEY} vmap @{NO_ENDPOINT_NODEPORTS}",
    ),
    (REJECT_CHAIN, "reject"),
    (MARK_MASQ, f"mark set mark or {MASQUERADE_MARK}"),
    ("masquerading", f"mark and {MASQUERADE_MARK} == 0 return"),
    ("masquerading", f"mark set mark xor {MASQUERADE_MARK}"),
    ("masquerading", "masquerade fully-random"),
)
VERDICT_MAP = "{ type ipv4_addr . inet_proto . inet_service : verdict ; }"
NODEPORT_MAP = "{ type inet_proto . inet_service : verdict ; }"
MAPS = (
    (SERVICE_IPS, VERDICT_MAP),
    (NO_ENDPOINTS, VERDICT_MAP),
    (SERVICE_NODEPORTS, NODEPORT_MAP),
    (NO_ENDPOINT_NODEPORTS, NODEPORT_MAP),
)


def chain_base(plan: PortPlan) -> str:
    """`servicePortChainNameBase`: "HASH-namespace/name/protocol/port"."""
    name = f"{plan.namespace}/{plan.service}/{plan.protocol}/{plan.port_name}"
    return f"{name_hash(name, 8)}-{name}"


def endpoint_base(plan: PortPlan, address: str, port: int) -> str:
    """`servicePortEndpointChainNameBase`: "HASH-namespace/name/protocol/port__ip/port"."""
    name = f"{plan.namespace}/{plan.service}/{plan.protocol}/{plan.port_name}__{address}/{port}"
    return f"{name_hash(name, 8)}-{name}"


def affinity_set(timeout_s: int) -> str:
    """An affinity set's declaration (`ipv4_addr`, flags dynamic,timeout, the Service's timeout)."""
    return f"{{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout_s}s ; }}"


AFFINITY_PREFIX = "affinity-"
SETUP_CHAINS = frozenset(
    [name for name, _, _, _ in BASE_CHAINS]
    + [chain for chain, _ in (*JUMPS, *HELPER_RULES)]
    + [FORWARD_CHAIN]
)
"""The chains `setup` writes: the proxy's Service-independent chains, never adopted."""
ADOPTED = ("# left by an earlier instance",)
"""The lines an adopted chain is taken to hold: they match no rendering, so it is rewritten."""


def adopted_set(flags: tuple[str, ...], timeout_s: int | None) -> str:
    """An existing set's declaration as `render` writes it, if it is an affinity set as this
    proxy declares them (the kernel lists such a set's flags as `timeout` alone, or with
    `dynamic`); otherwise one no rendering has (so the first sync replaces it)."""
    if "timeout" in flags and set(flags) <= {"dynamic", "timeout"} and timeout_s is not None:
        return affinity_set(timeout_s)
    return f"{{ unknown flags {','.join(sorted(flags))} }}"


class NftablesProxy(KernelRuleProxy):
    """kube-proxy's nftables mode in the node namespace (see the module docstring)."""

    name: ClassVar[str] = "nftables"
    features: ClassVar[frozenset[str]] = KERNEL_FEATURES
    description: ClassVar[str] = (
        "kube-proxy nftables mode (numgen vmaps, affinity sets, reject), incremental nft -f"
    )
    binaries: ClassVar[tuple[str, ...]] = ("nft",)
    no_local_external_verdict: ClassVar[str] = "drop"

    def __init__(self) -> None:
        super().__init__()
        self.maps_to_flush: tuple[str, ...] = ()  # adopted maps with elements, for the first sync

    @property
    def table(self) -> str:
        prefix = self.node.prefix if self.node is not None else "hk"
        return f"{prefix}-kube-proxy"

    # -- rendering ------------------------------------------------------------------------------
    def render(self, plans: tuple[PortPlan, ...]) -> Rendering:
        chains: dict[str, Lines] = {}
        dispatch: dict[str, str] = {}
        rejects: dict[str, str] = {}
        sets: dict[str, str] = {}
        node_ports: dict[str, str] = {}
        node_port_rejects: dict[str, str] = {}
        for plan in plans:
            if plan.node_port is not None:
                key = f"{plan.protocol} . {plan.node_port}"
                if plan.external:
                    node_ports[key] = f"goto {self.render_external(plan, chains, sets)}"
                else:
                    node_port_rejects[key] = self.external_filter_verdict(plan)
                self.render_load_balancer(plan, dispatch, rejects)
            elif plan.external_ips:
                if plan.external:
                    self.render_external(plan, chains, sets)
                self.render_load_balancer(plan, dispatch, rejects)
            key = f"{plan.cluster_ip} . {plan.protocol} . {plan.port}"
            if not plan.destinations:
                rejects[key] = "drop" if plan.drops else f"goto {REJECT_CHAIN}"
                continue
            dispatch[key] = f"goto {self.render_service(plan, chains, sets)}"
        entries = {
            SERVICE_IPS: dispatch,
            NO_ENDPOINTS: rejects,
            SERVICE_NODEPORTS: node_ports,
            NO_ENDPOINT_NODEPORTS: node_port_rejects,
        }
        return Rendering(chains, {k: v for k, v in entries.items() if v}, sets)

    def render_external(
        self, plan: PortPlan, chains: dict[str, Lines], sets: dict[str, str]
    ) -> str:
        """Add the node port's `external-` chain and the chains it goes to (module docstring);
        return its name."""
        routed = replace(plan, destinations=plan.external, local_policy=plan.external_local)
        external = f"external-{chain_base(plan)}"
        masquerade = () if plan.external_local else (f"jump {MARK_MASQ}",)
        chains[external] = (*masquerade, f"goto {self.render_service(routed, chains, sets)}")
        return external

    def render_load_balancer(
        self, plan: PortPlan, dispatch: dict[str, str], rejects: dict[str, str]
    ) -> None:
        """Add `plan`'s ingress IPs (module docstring): a `service-ips` element going to the
        node port's `external-` chain (written by `render_external`) per ingress IP while it has
        external destinations, else a `no-endpoint-services` element with the node port's
        verdict. Its externalIPs alike ("Capture externalIPs")."""
        for address in (*plan.load_balancer_ips, *plan.external_ips):
            key = f"{address} . {plan.protocol} . {plan.port}"
            if plan.external:
                dispatch[key] = f"goto external-{chain_base(plan)}"
            else:
                rejects[key] = self.external_filter_verdict(plan)

    def external_filter_verdict(self, plan: PortPlan) -> str:
        """The verdict for `plan`'s external traffic when it has no external destinations:
        `drop` ("has no local endpoints") with endpoints elsewhere, else `goto reject-chain`."""
        return self.no_local_external_verdict if plan.external_drops else f"goto {REJECT_CHAIN}"

    def render_service(self, plan: PortPlan, chains: dict[str, Lines], sets: dict[str, str]) -> str:
        """Add the chain choosing among `plan.destinations`, their endpoint chains and affinity
        sets; return the chain's name (`local-` under Local policy, else `service-`)."""
        chain = ("local-" if plan.local_policy else "service-") + chain_base(plan)
        endpoints = [
            (endpoint_base(plan, d.address, d.port), d.address, d.port) for d in plan.destinations
        ]
        lines = []
        if plan.affinity_timeout_s is not None:
            for base, _, _ in endpoints:
                sets[f"affinity-{base}"] = affinity_set(plan.affinity_timeout_s)
                lines.append(f"ip saddr @affinity-{base} goto endpoint-{base}")
        choices = " , ".join(
            f"{index} : goto endpoint-{base}" for index, (base, _, _) in enumerate(endpoints)
        )
        lines.append(f"numgen random mod {len(endpoints)} vmap {{ {choices} }}")
        chains[chain] = tuple(lines)
        for base, address, port in endpoints:
            chains[f"endpoint-{base}"] = self.endpoint_rules(plan, base, address, port)
        return chain

    def endpoint_rules(self, plan: PortPlan, base: str, address: str, port: int) -> Lines:
        lines = [f"ip saddr {address} jump {MARK_MASQ}"]
        if plan.affinity_timeout_s is not None:
            lines.append(f"update @affinity-{base} {{ ip saddr }}")
        lines.append(f"meta l4proto {plan.protocol} dnat to {address}:{port}")
        return tuple(lines)

    def transaction(self, delta: Delta, rendered: Mapping[str, Rendering]) -> str:
        """Flush what is rewritten or deleted, remove stale elements, chains and sets, then add
        sets, chains, rules and elements: references always go before what they point to. The
        first sync after adopting an earlier instance's table flushes its maps first and refills
        them, as kube-proxy's every sync does."""
        t = f"ip {self.table}"
        maps = self.maps_to_flush if self.adopted is not None else ()
        out = [f"flush map {t} {name}" for name in maps]
        out += [f"flush chain {t} {c}" for c in sorted(delta.existing | delta.chains_deleted)]
        for container, removed in sorted(delta.entries_removed.items()):
            out += [f"delete element {t} {container} {{ {key} }}" for key in removed]
        out += [f"delete chain {t} {c}" for c in sorted(delta.chains_deleted)]
        out += [f"delete set {t} {s}" for s in sorted(delta.sets_deleted)]
        out += [f"add set {t} {s} {decl}" for s, decl in sorted(delta.sets_added.items())]
        # every new chain first: a node port's `external-` chain goes to one added with it
        out += [
            f"add chain {t} {c}" for c in sorted(delta.chains_written) if c not in delta.existing
        ]
        for chain, lines in sorted(delta.chains_written.items()):
            out += [f"add rule {t} {chain} {line}" for line in lines]
        for container, added in sorted(delta.entries_added.items()):
            out += [f"add element {t} {container} {{ {k} : {v} }}" for k, v in added.items()]
        return "\n".join(out) + "\n"

    # -- the kernel -----------------------------------------------------------------------------
    def apply(self, payload: str) -> None:
        run_in_netns(
            self.netns, ["nft", "-f", "-"], stdin=payload, timeout_s=transaction_timeout_s(payload)
        )

    def setup(self) -> None:
        t = f"ip {self.table}"
        out = [f'add table {t} {{ comment "rules for kube-proxy" ; }}']
        for name, kind, hook, priority in BASE_CHAINS:
            out.append(f"add chain {t} {name} {{ type {kind} hook {hook} priority {priority} ; }}")
        base_chains = {name for name, _, _, _ in BASE_CHAINS}
        helpers = sorted({FORWARD_CHAIN} | {c for c, _ in (*JUMPS, *HELPER_RULES)} - base_chains)
        out += [f"add chain {t} {chain}" for chain in helpers]
        out += [f"add map {t} {name} {declaration}" for name, declaration in MAPS]
        # idempotent over an earlier instance's table, in the same transaction: no rule doubled
        out += [f"flush chain {t} {chain}" for chain in sorted(SETUP_CHAINS)]
        out += [f"add rule {t} {chain} {rule}" for chain, rule in (*HELPER_RULES, *JUMPS)]
        if self.drops_invalid():
            out.append(f"add rule {t} {FORWARD_CHAIN} {DROP_INVALID}")
        self.apply("\n".join(out) + "\n")

    def adopt(self) -> Rendering:
        """The Service chains and affinity sets an earlier instance left in the table (chains
        rewritten or deleted by the first sync, a set kept with its entries while a Service
        still needs it as declared); its maps are flushed by that sync (`maps_to_flush`)."""
        text = run_in_netns(self.netns, ["nft", "-j", "list", "table", "ip", self.table])
        contents = parse_nft_json(text).get(("ip", self.table))
        if contents is None:
            return EMPTY
        chains = {name: ADOPTED for name in contents.chains if name not in SETUP_CHAINS}
        sets = {
            name: adopted_set(found.flags, found.timeout_s)
            for name, found in contents.sets.items()
            if name.startswith(AFFINITY_PREFIX)
        }
        maps = tuple(name for name, _ in MAPS)
        self.maps_to_flush = tuple(
            m for m in maps if m in contents.sets and contents.sets[m].elements
        )
        return Rendering(chains, {}, sets) if chains or sets or self.maps_to_flush else EMPTY

    def teardown(self) -> None:
        """Delete the proxy's table with everything in it ("add" first, so it need not exist)."""
        self.apply(f"add table ip {self.table}\ndelete table ip {self.table}\n")

    def read_rules(self) -> NftRuleset:
        text = run_in_netns(self.netns, ["nft", "-j", "list", "ruleset"])
        return NftRuleset(parse_nft_json(text), self.netns)
