"""The `iptables` proxy: kube-proxy's iptables-mode layout, applied with iptables-restore.

Layout (`pkg/proxy/iptables/proxier.go: syncProxyRules`, `writeServiceToEndpointRules`):

- nat: PREROUTING and OUTPUT jump to KUBE-SERVICES; KUBE-SERVICES holds one rule per Service
  port with usable endpoints, `-d VIP -p tcp --dport PORT -j KUBE-SVC-<hash>` (KUBE-SVL-<hash> for
  internalTrafficPolicy=Local, whose chain lists only this node's endpoints).
- KUBE-SVC/SVL: with ClientIP affinity first one `-m recent --name KUBE-SEP-<hash> --rcheck
  --seconds T --reap` rule per endpoint; then the probability chain: rule i of n jumps to endpoint
  i with `-m statistic --mode random --probability 1/(n-i)`, printed with 10 decimals (PR
  #83599), and the last rule jumps unconditionally, so each endpoint gets 1/n.
- KUBE-SEP-<hash>: `-s POD_IP -j KUBE-MARK-MASQ` (hairpin), then DNAT to POD_IP:PORT (with
  `-m recent --set --name KUBE-SEP-<hash>` for affinity).
- KUBE-MARK-MASQ sets mark 0x4000; KUBE-POSTROUTING masquerades marked packets.
- filter: INPUT, FORWARD and OUTPUT jump (conntrack NEW) to KUBE-SERVICES, which REJECTs
  (`--reject-with icmp-port-unreachable`, comment "has no endpoints") Service ports without any
  endpoints (kubernetes#17359, PR #72534) and DROPs (comment "has no local endpoints") those with
  endpoints of which none is usable here, internalTrafficPolicy=Local with endpoints only on
  other nodes (`internalTrafficFilterTarget = "DROP"`). kube-proxy jumps there from FORWARD and
  OUTPUT; INPUT is added because a local cluster may route the Service range to the node itself.
- filter: FORWARD jumps (`-m comment --comment "kubernetes forwarding rules"`) to KUBE-FORWARD,
  which DROPs packets conntrack marks INVALID (`-m conntrack --ctstate INVALID -j DROP`) unless
  the node sets `nf_conntrack_tcp_be_liberal` (kubernetes#74839, PR #120412:
  `harness.proxies.rules.invalid`). kube-proxy's further KUBE-FORWARD rules ACCEPT marked and
  established traffic for nodes whose FORWARD policy is DROP; the node here accepts.

Node ports (NodePort and LoadBalancer Services; `syncProxyRules`, "Capture nodeports"):

- nat: KUBE-SERVICES ends with `-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS` (comment
  "kubernetes service nodeports; NOTE: this must be the last rule in this chain"), written
  while some Service port has a KUBE-NODEPORTS entry; KUBE-NODEPORTS holds one rule per node
  port with external endpoints, `-p tcp --dport NODE_PORT -j KUBE-EXT-<hash>`.
- KUBE-EXT-<hash> (`externalPolicyChainName`): under externalTrafficPolicy Cluster it marks for
  masquerade (comment "masquerade traffic for ... external destinations", so the pod sees a node's
  address) and jumps to KUBE-SVC-<hash>, the chain of every usable endpoint; under Local it jumps
  to KUBE-SVL-<hash>, this node's endpoints only, unmasqueraded (the pod sees the client). The
  rules kube-proxy adds for the node's own and the pods' traffic to a Local node port
  (`--src-type LOCAL`, the cluster-CIDR detector) are left out: that traffic is not judged.
- filter: INPUT and FORWARD jump (conntrack NEW, comment "kubernetes externally-visible service
  portals") to KUBE-EXTERNAL-SERVICES, which REJECTs a node port whose Service has no endpoints
  and DROPs one with endpoints but none for external traffic here (`externalTrafficFilterTarget`,
  "has no local endpoints"), each `-m addrtype --dst-type LOCAL -p tcp --dport NODE_PORT`.

LoadBalancer ingress IPs (`syncProxyRules`, "Capture load-balancer ingress"): per ingress IP of a
Service port with external endpoints, a KUBE-SERVICES rule `-d LB_IP/32 -p tcp --dport PORT -j
KUBE-EXT-<hash>` (comment "... loadbalancer IP"), the node port's own chain, so the ingress IP
gets externalTrafficPolicy exactly as the node port does; without external endpoints the same
REJECT ("has no endpoints") or DROP ("has no local endpoints") in KUBE-EXTERNAL-SERVICES, `-d
LB_IP/32 -p tcp --dport PORT`, met on the forwarding path (the node routes the ingress range as
a real node's default route would: `harness.local.cluster`). kube-proxy's KUBE-FW-<hash> chain
for `loadBalancerSourceRanges` is left out (the model has none).

externalIPs (`syncProxyRules`, "Capture externalIPs"; a Service of any type): per externalIP of
a Service port, a KUBE-SERVICES rule `-d EXT_IP/32 -p tcp --dport PORT -j KUBE-EXT-<hash>`
(comment "... external IP") while it has external endpoints, else the same REJECT or DROP in
KUBE-EXTERNAL-SERVICES; a ClusterIP Service with externalIPs gets its KUBE-EXT chain without a
node port.

Chain names hash "namespace/name:port" + protocol (+ "ip:port" for endpoints) like
`servicePortChainName`. Without a cluster CIDR kube-proxy adds no `! -s CIDR -j KUBE-MARK-MASQ`
rule, and neither does this proxy, so pods see the client's own address.

Partial sync (KEP-3453): a sync writes, in one `iptables-restore --noflush`, only the chains whose
rules changed, deletes the chains no Service needs (`:CHAIN` then `-X CHAIN`), and rewrites a
KUBE-SERVICES chain only when a Service port gained, lost or changed its entry there.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import ClassVar

from harness.model.objects import Destination
from harness.proxies.base import KERNEL_FEATURES
from harness.proxies.rules.commands import run_in_netns, transaction_timeout_s
from harness.proxies.rules.invalid import FORWARD_COMMENT
from harness.proxies.rules.iptables_save import Table, parse_iptables_save
from harness.proxies.rules.iptables_trace import IptablesRuleset
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.proxies.rules.plan import PortPlan, name_hash
from harness.proxies.rules.rendering import (
    EMPTY,
    Delta,
    Lines,
    Rendering,
    container_entries,
)

SERVICES = "KUBE-SERVICES"
MARK_MASQ = "KUBE-MARK-MASQ"
POSTROUTING = "KUBE-POSTROUTING"
MASQUERADE_MARK = "0x4000"
OWN_PREFIX = "KUBE-"
FORWARD = "KUBE-FORWARD"
NODEPORTS = "KUBE-NODEPORTS"
EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
NAT_NODEPORTS = f"nat {NODEPORTS}"
FILTER_EXTERNAL = f"filter {EXTERNAL_SERVICES}"
NODEPORTS_JUMP = (
    f"-A {SERVICES} -m comment --comment"
    ' "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
    f" -m addrtype --dst-type LOCAL -j {NODEPORTS}"
)
EXTERNAL_PORTALS = '-m comment --comment "kubernetes externally-visible service portals"'
NAT_SERVICES = f"nat {SERVICES}"
FILTER_SERVICES = f"filter {SERVICES}"
PORTALS = '-m comment --comment "kubernetes service portals"'
SNAT_COMMENT = "kubernetes service traffic requiring SNAT"

SETUP = f"""*filter
:{SERVICES} - [0:0]
:{FORWARD} - [0:0]
:{EXTERNAL_SERVICES} - [0:0]
-A INPUT -m conntrack --ctstate NEW {PORTALS} -j {SERVICES}
-A INPUT -m conntrack --ctstate NEW {EXTERNAL_PORTALS} -j {EXTERNAL_SERVICES}
-A FORWARD -m comment --comment "{FORWARD_COMMENT}" -j {FORWARD}
-A FORWARD -m conntrack --ctstate NEW {PORTALS} -j {SERVICES}
-A FORWARD -m conntrack --ctstate NEW {EXTERNAL_PORTALS} -j {EXTERNAL_SERVICES}
-A OUTPUT -m conntrack --ctstate NEW {PORTALS} -j {SERVICES}
COMMIT
*nat
:{SERVICES} - [0:0]
:{NODEPORTS} - [0:0]
:{MARK_MASQ} - [0:0]
:{POSTROUTING} - [0:0]
-A PREROUTING {PORTALS} -j {SERVICES}
-A OUTPUT {PORTALS} -j {SERVICES}
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j {POSTROUTING}
-A {MARK_MASQ} -j MARK --or-mark {MASQUERADE_MARK}
-A {POSTROUTING} -m mark ! --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j RETURN
-A {POSTROUTING} -j MARK --xor-mark {MASQUERADE_MARK}
-A {POSTROUTING} -m comment --comment "{SNAT_COMMENT}" -j MASQUERADE --random-fully
COMMIT
"""

DROP_INVALID = f"""*filter
-A {FORWARD} -m conntrack --ctstate INVALID -j DROP
COMMIT
"""


def service_chain(plan: PortPlan) -> str:
    prefix = "KUBE-SVL-" if plan.local_policy else "KUBE-SVC-"
    return prefix + name_hash(plan.name + plan.protocol, 16)


def external_chain(plan: PortPlan) -> str:
    """`externalPolicyChainName`: KUBE-EXT-<hash>, the node port's chain."""
    return "KUBE-EXT-" + name_hash(plan.name + plan.protocol, 16)


def endpoint_chain(plan: PortPlan, address: str, port: int) -> str:
    return _endpoint_chain(f"{plan.name}{plan.protocol}", address, port)


def _endpoint_chain(service_port: str, address: str, port: int) -> str:
    """KUBE-SEP-<hash> of an endpoint of the Service port named `service_port` (its
    "namespace/name:port" and protocol)."""
    return "KUBE-SEP-" + name_hash(f"{service_port}{address}:{port}", 16)


def endpoint_chains(plan: PortPlan, destinations: Iterable[Destination]) -> list[str]:
    """`endpoint_chain` of each of `destinations` (the plan's own or its external ones), in
    order: the plan's name is built once, not once per endpoint."""
    service_port = f"{plan.name}{plan.protocol}"
    return [_endpoint_chain(service_port, d.address, d.port) for d in destinations]


SETUP_CHAINS = frozenset(re.findall(r"^:(\S+) ", SETUP, re.MULTILINE))
"""The chains SETUP declares: the proxy's Service-independent chains, never adopted."""
ADOPTED = ("# left by an earlier instance",)
"""The lines an adopted chain is taken to hold: they match no rendering, so it is rewritten."""


def setup_over(text: str, present: Mapping[str, Table]) -> str:
    """`text` (restore input for `--noflush`) made safe over what an earlier instance left: a
    chain that exists is declared, which flushes it, only if `text` refills it in the same
    restore (KUBE-SERVICES keeps its rules until the first sync), and a jump from a built-in
    chain to a chain of this proxy is left out if it is there already (kube-proxy's
    `EnsureRule`)."""
    out: list[str] = []
    refilled = {(t, line.split()[1]) for t, line in _table_lines(text) if line.startswith("-A ")}
    for table, line in _table_lines(text):
        chains = present[table].chains if table in present else {}
        if line.startswith(":"):
            chain = line[1:].split()[0]
            if chain in chains and (table, chain) not in refilled:
                continue
        elif line.startswith("-A "):
            chain, target = line.split()[1], line.rsplit(" -j ", 1)[-1].split()[0]
            if (
                chain not in SETUP_CHAINS
                and target.startswith(OWN_PREFIX)
                and any(rule.target == target for rule in chains.get(chain, []))
            ):
                continue
        out.append(line)
    return "\n".join(out) + "\n"


def _table_lines(text: str) -> list[tuple[str, str]]:
    """Each line of restore input with the table it belongs to."""
    lines: list[tuple[str, str]] = []
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        lines.append((table, line))
    return lines


def is_pristine(table: Table) -> bool:
    """Only built-in chains, all empty, all with policy ACCEPT."""
    return (
        not any(table.chains.values())
        and set(table.chains) == set(table.policies)
        and set(table.policies.values()) <= {"ACCEPT"}
    )


class IptablesProxy(KernelRuleProxy):
    """kube-proxy's iptables mode in the node namespace (see the module docstring)."""

    name: ClassVar[str] = "iptables"
    features: ClassVar[frozenset[str]] = KERNEL_FEATURES
    description: ClassVar[str] = (
        "kube-proxy iptables mode (probability chains, recent affinity, REJECT), iptables-restore"
    )
    binaries: ClassVar[tuple[str, ...]] = ("iptables-restore", "iptables-save")
    no_endpoints_target: ClassVar[str] = "REJECT --reject-with icmp-port-unreachable"
    no_local_endpoints_target: ClassVar[str] = "DROP"
    no_local_external_target: ClassVar[str] = "DROP"

    def __init__(self) -> None:
        super().__init__()
        self.made_tables: set[str] = set()

    # -- rendering ------------------------------------------------------------------------------
    def probability(self, index: int, count: int) -> float:
        """The probability of rule `index` of `count` in a probability chain: 1/(n-i)."""
        return 1.0 / (count - index)

    def render(self, plans: tuple[PortPlan, ...]) -> Rendering:
        chains: dict[str, Lines] = {}
        nat_entries: dict[str, str] = {}
        filter_entries: dict[str, str] = {}
        node_ports: dict[str, str] = {}
        external_filter: dict[str, str] = {}
        for plan in plans:
            if plan.node_port is not None or plan.external_ips:
                self.render_node_port(plan, chains, node_ports, external_filter)
                self.render_load_balancer(plan, nat_entries, external_filter)
            match = (
                f"-d {plan.cluster_ip}/32 -p {plan.protocol} -m comment --comment "
                f'"{plan.name} {{}}" -m {plan.protocol} --dport {plan.port}'
            )
            if not plan.destinations:
                if plan.drops:
                    why, target = "has no local endpoints", self.no_local_endpoints_target
                else:
                    why, target = "has no endpoints", self.no_endpoints_target
                filter_entries[f"-A {SERVICES} {match.format(why)} -j {target}"] = ""
                continue
            chain = service_chain(plan)
            nat_entries[f"-A {SERVICES} {match.format('cluster IP')} -j {chain}"] = ""
            seps = endpoint_chains(plan, plan.destinations)
            chains[chain] = self.service_rules(plan, chain, seps)
            for destination, sep in zip(plan.destinations, seps, strict=True):
                chains[sep] = self.endpoint_rules(plan, sep, destination.address, destination.port)
        entries = {
            NAT_SERVICES: nat_entries,
            FILTER_SERVICES: filter_entries,
            NAT_NODEPORTS: node_ports,
            FILTER_EXTERNAL: external_filter,
        }
        return Rendering(chains, {k: v for k, v in entries.items() if v})

    def render_node_port(
        self,
        plan: PortPlan,
        chains: dict[str, Lines],
        node_ports: dict[str, str],
        external_filter: dict[str, str],
    ) -> None:
        """Add `plan`'s node-port objects (module docstring): its KUBE-NODEPORTS entry, KUBE-EXT
        chain and the chains it jumps to, or its KUBE-EXTERNAL-SERVICES DROP or REJECT; for a
        plan without a node port (a ClusterIP Service with externalIPs) the KUBE-EXT chain
        alone."""
        port_match = f"-p {plan.protocol} -m {plan.protocol} --dport {plan.node_port}"
        if not plan.external:
            why, target = self.external_filter_target(plan)
            if plan.node_port is not None:
                external_filter[
                    f'-A {EXTERNAL_SERVICES} -m comment --comment "{plan.name} {why}"'
                    f" -m addrtype --dst-type LOCAL {port_match} -j {target}"
                ] = ""
            return
        ext = external_chain(plan)
        if plan.node_port is not None:
            node_ports[
                f'-A {NODEPORTS} -m comment --comment "{plan.name}" {port_match} -j {ext}'
            ] = ""
        routed = replace(plan, destinations=plan.external, local_policy=plan.external_local)
        chain = service_chain(routed)
        lines = []
        if not plan.external_local:
            lines.append(
                f'-A {ext} -m comment --comment "masquerade traffic for {plan.name} external'
                f' destinations" -j {MARK_MASQ}'
            )
        chains[ext] = (*lines, f"-A {ext} -j {chain}")
        seps = endpoint_chains(plan, plan.external)
        chains[chain] = self.service_rules(routed, chain, seps)
        for destination, sep in zip(plan.external, seps, strict=True):
            chains[sep] = self.endpoint_rules(plan, sep, destination.address, destination.port)

    def render_load_balancer(
        self, plan: PortPlan, nat_entries: dict[str, str], external_filter: dict[str, str]
    ) -> None:
        """Add `plan`'s ingress IPs (module docstring, "Capture load-balancer ingress"): a
        KUBE-SERVICES rule to its KUBE-EXT chain (written by `render_node_port`) per ingress IP
        while it has external destinations, else the same DROP or REJECT in
        KUBE-EXTERNAL-SERVICES as its node port gets. Its externalIPs alike ("Capture
        externalIPs", comment "external IP")."""
        addresses = [(a, "loadbalancer IP") for a in plan.load_balancer_ips]
        for address, what in addresses + [(a, "external IP") for a in plan.external_ips]:
            match = (
                f"-d {address}/32 -p {plan.protocol} -m comment --comment"
                f' "{plan.name} {{}}" -m {plan.protocol} --dport {plan.port}'
            )
            if plan.external:
                target = external_chain(plan)
                nat_entries[f"-A {SERVICES} {match.format(what)} -j {target}"] = ""
                continue
            why, target = self.external_filter_target(plan)
            external_filter[f"-A {EXTERNAL_SERVICES} {match.format(why)} -j {target}"] = ""

    def external_filter_target(self, plan: PortPlan) -> tuple[str, str]:
        """The comment and target of `plan`'s KUBE-EXTERNAL-SERVICES rules when it has no
        external destinations (`externalTrafficFilterTarget`): DROP "has no local endpoints"
        with endpoints elsewhere, else REJECT "has no endpoints"."""
        if plan.external_drops:
            return "has no local endpoints", self.no_local_external_target
        return "has no endpoints", self.no_endpoints_target

    def service_rules(self, plan: PortPlan, chain: str, seps: Sequence[str] | None = None) -> Lines:
        """The rules of `plan`'s Service chain `chain`; `seps` are its destinations' endpoint
        chains, in order (`endpoint_chains`, computed here when not given)."""
        lines = []
        name = plan.name
        if seps is None:
            seps = endpoint_chains(plan, plan.destinations)
        targets = list(zip(plan.destinations, seps, strict=True))
        if plan.affinity_timeout_s is not None:
            for destination, sep in targets:
                lines.append(
                    f'-A {chain} -m comment --comment "{name} -> {destination.address}:'
                    f'{destination.port}" -m recent --name {sep} --rcheck --seconds '
                    f"{plan.affinity_timeout_s} --reap -j {sep}"
                )
        last = len(targets) - 1
        for index, (destination, sep) in enumerate(targets):
            comment = f'-m comment --comment "{name} -> {destination.address}:{destination.port}"'
            if index < last:
                chance = self.probability(index, len(targets))
                comment += f" -m statistic --mode random --probability {chance:.10f}"
            lines.append(f"-A {chain} {comment} -j {sep}")
        return tuple(lines)

    def endpoint_rules(self, plan: PortPlan, chain: str, address: str, port: int) -> Lines:
        recent = f" -m recent --set --name {chain}" if plan.affinity_timeout_s is not None else ""
        return (
            f'-A {chain} -m comment --comment "{plan.name}" -s {address}/32 -j {MARK_MASQ}',
            f'-A {chain} -m comment --comment "{plan.name}"{recent} -p {plan.protocol} '
            f"-m {plan.protocol} -j DNAT --to-destination {address}:{port}",
        )

    def transaction(self, delta: Delta, rendered: Mapping[str, Rendering]) -> str:
        nat: list[str] = []
        rules: list[str] = []
        changed = delta.containers_changed
        if NAT_NODEPORTS in changed:  # KUBE-SERVICES' last rule comes and goes with it
            changed = changed | {NAT_SERVICES}
        filter_rules = [
            line
            for container in (FILTER_SERVICES, FILTER_EXTERNAL)
            if container in changed
            for line in (
                f":{container.split()[1]} - [0:0]",
                *container_entries(rendered.values(), container),
            )
        ]
        filter_part = ["*filter", *filter_rules, "COMMIT"] if filter_rules else []
        node_ports = container_entries(rendered.values(), NAT_NODEPORTS)
        if NAT_SERVICES in changed:
            nat.append(f":{SERVICES} - [0:0]")
            rules.extend(container_entries(rendered.values(), NAT_SERVICES))
            if node_ports:
                rules.append(NODEPORTS_JUMP)
        if NAT_NODEPORTS in changed:
            nat.append(f":{NODEPORTS} - [0:0]")
            rules.extend(node_ports)
        for chain in sorted(set(delta.chains_written) | delta.chains_deleted):
            nat.append(f":{chain} - [0:0]")
        for _, lines in sorted(delta.chains_written.items()):
            rules.extend(lines)
        deletions = [f"-X {chain}" for chain in sorted(delta.chains_deleted)]
        nat_part = ["*nat", *nat, *rules, *deletions, "COMMIT"] if nat else []
        return "\n".join([*filter_part, *nat_part]) + "\n"

    # -- the kernel -----------------------------------------------------------------------------
    def apply(self, payload: str) -> None:
        run_in_netns(
            self.netns,
            ["iptables-restore", "--noflush"],
            stdin=payload,
            timeout_s=transaction_timeout_s(payload),
        )

    def setup(self) -> None:
        """SETUP in one restore, over what an earlier instance left without a moment's change
        to what packets see (`setup_over`).
        A table counts as this proxy's (deleted by `stop()` once empty) if it was absent or
        holds an earlier instance's KUBE-* chains."""
        present = parse_iptables_save(run_in_netns(self.netns, ["iptables-save"]))
        self.made_tables = {
            name
            for name in ("filter", "nat")
            if name not in present or any(c.startswith(OWN_PREFIX) for c in present[name].chains)
        }
        self.apply(setup_over(SETUP + (DROP_INVALID if self.drops_invalid() else ""), present))

    def adopt(self) -> Rendering:
        """The Service chains an earlier instance left in nat (each rewritten or deleted by the
        first sync) and, if either KUBE-SERVICES chain holds rules, a placeholder entry in it,
        so that the first sync rewrites both whole."""
        tables = parse_iptables_save(run_in_netns(self.netns, ["iptables-save"]))
        nat = tables.get("nat")
        chains = {
            name: ADOPTED
            for name in (nat.chains if nat is not None else {})
            if name.startswith(OWN_PREFIX) and name not in SETUP_CHAINS
        }
        entries = {
            f"{name} {chain}": {ADOPTED[0]: ""}
            for name, table in tables.items()
            for chain in (SERVICES, NODEPORTS, EXTERNAL_SERVICES)
            if name in ("filter", "nat") and table.chains.get(chain)
        }
        return Rendering(chains, entries) if chains or entries else EMPTY

    def teardown(self) -> None:
        """Flush and delete every KUBE-* chain in nat and filter and the jumps to them, read
        from iptables-save so that leftovers of a crashed run go too. The nat and filter tables
        that iptables-nft created for this proxy are deleted too once empty."""
        tables = parse_iptables_save(run_in_netns(self.netns, ["iptables-save"]))
        sections = []
        for name in ("filter", "nat"):
            table = tables.get(name)
            if table is None:
                continue
            own = sorted(chain for chain in table.chains if chain.startswith(OWN_PREFIX))
            jumps = [
                "-D" + rule.text[2:]
                for chain, rules in table.chains.items()
                if not chain.startswith(OWN_PREFIX)
                for rule in rules
                if rule.target.startswith(OWN_PREFIX)
            ]
            if own or jumps:
                declared = [f":{chain} - [0:0]" for chain in own]
                deleted = [f"-X {chain}" for chain in own]
                sections.extend([f"*{name}", *declared, *jumps, *deleted, "COMMIT"])
        if sections:
            self.apply("\n".join(sections) + "\n")
        self.delete_made_tables()

    def delete_made_tables(self) -> None:
        """Delete the empty nat and filter tables iptables-nft created for this proxy.

        iptables itself cannot delete a table; `nft` can (exit code 1, for a legacy backend
        without such an nftables table, is ignored), so stop() leaves the namespace as it was.
        """
        made, self.made_tables = self.made_tables, set()
        if not made or shutil.which("nft") is None:
            return
        tables = parse_iptables_save(run_in_netns(self.netns, ["iptables-save"]))
        for name in sorted(made):
            if name in tables and is_pristine(tables[name]):
                run_in_netns(self.netns, ["nft", "delete", "table", "ip", name], ok_codes=(0, 1))

    def read_rules(self) -> IptablesRuleset:
        text = run_in_netns(self.netns, ["iptables-save"])
        return IptablesRuleset(parse_iptables_save(text), self.netns)
