"""Tracing a new TCP connection through an `iptables-save` dump.

A forwarded packet passes, in order: raw, mangle and nat PREROUTING, then mangle and filter
FORWARD (netfilter's hook priorities); a packet to the node's own address that no DNAT moved
(NodePort traffic the node does not forward) meets mangle and filter INPUT instead. The matches
and targets kube-proxy's iptables mode uses are evaluated exactly
(`pkg/proxy/iptables/proxier.go`); anything else raises `UntraceableRules` rather than being
guessed:

- `-s`, `-d`, `-p`; `-m tcp/udp --dport`; `-m multiport --dports`; `-m comment`;
- `-m statistic --mode random --probability p`: matches with the kernel's exact probability;
- `-m recent --rcheck/--update/--remove --name N`: matches when N is in `Packet.remembered`;
  `--set` always matches (it records, which a first packet's trace need not follow);
- `-m conntrack --ctstate` / `-m state --state`: the first packet is NEW (`Packet.ct_state`:
  INVALID for an out-of-window segment); `-m mark --mark`;
- `-m addrtype --dst-type LOCAL`: `Packet.local_destination` (kube-proxy's NodePort dispatch);
- targets: chains (`-j` jump, `-g` goto), RETURN, ACCEPT, DROP, REJECT, DNAT, MARK, MASQUERADE,
  SNAT and LOG.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import replace

from harness.proxies.rules import tracing
from harness.proxies.rules.iptables_save import Module, Option, Rule, Table
from harness.proxies.rules.tracing import Packet, UntraceableRules, Verdict

FORWARD_PATH = (
    ("raw", "PREROUTING"),
    ("mangle", "PREROUTING"),
    ("nat", "PREROUTING"),
    ("mangle", "FORWARD"),
    ("filter", "FORWARD"),
    ("mangle", "INPUT"),
    ("filter", "INPUT"),
)
DELIVERY = {"FORWARD": False, "INPUT": True}
"""The chains after routing, by whether they lie on the local-delivery path
(`BaseChain.delivery`): a packet to the node's own address that no DNAT moved meets INPUT."""
PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp", "132": "sctp", "1": "icmp"}
TERMINAL_TARGETS = {"ACCEPT": tracing.ACCEPT, "DROP": tracing.DROP, "REJECT": tracing.REJECT}
FALLTHROUGH_TARGETS = {"", "LOG"}
SOURCE_NAT_TARGETS = {"MASQUERADE", "SNAT"}
MARK_MASK = 0xFFFFFFFF


class IptablesChains:
    """One table of the dump as a `ChainSource` for the tracing engine."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def rules(self, chain: str) -> Sequence[Rule]:
        if chain not in self.table.chains:
            raise UntraceableRules(f"chain {chain} is not in table {self.table.name}")
        return self.table.chains[chain]

    def evaluate(self, rule: Rule, packet: Packet) -> tracing.Branches:
        probability = 1.0 if basics_match(rule, packet) else 0.0
        for module in rule.modules:
            if probability == 0.0:
                break
            probability *= module_probability(module, packet, rule)
        branches: tracing.Branches = []
        if probability > 0.0:
            branches.append((probability, self.action(rule, packet)))
        if probability < 1.0:
            branches.append((1.0 - probability, tracing.Next(packet)))
        return branches

    def action(self, rule: Rule, packet: Packet) -> tracing.Action:
        target = rule.target
        if target in self.table.chains:
            return tracing.Jump(target, packet, goto=rule.goto)
        if target in TERMINAL_TARGETS:
            return tracing.Final(TERMINAL_TARGETS[target], packet)
        if target == "RETURN":
            return tracing.Return(packet)
        if target in FALLTHROUGH_TARGETS:
            return tracing.Next(packet)
        if target == "DNAT":
            return tracing.Final(dnat_verdict(rule, packet), packet)
        if target == "MARK":
            return tracing.Next(replace(packet, mark=marked(rule, packet.mark)))
        if target in SOURCE_NAT_TARGETS:
            return tracing.Final(tracing.ACCEPT, packet)
        raise UntraceableRules(f"target {target} is not traced: {rule.text}")


def basics_match(rule: Rule, packet: Packet) -> bool:
    """`-s`, `-d` and `-p` against the packet; interfaces cannot be known."""
    for name, option in rule.basics.items():
        if name == "-s":
            held = in_network(packet.source, option.value)
        elif name == "-d":
            held = in_network(packet.destination, option.value)
        elif name == "-p":
            protocol = PROTOCOL_NUMBERS.get(option.value, option.value.lower())
            held = protocol in ("all", packet.protocol)
        else:
            raise UntraceableRules(f"option {name} depends on interfaces: {rule.text}")
        if held == option.negated:
            return False
    return True


def module_probability(module: Module, packet: Packet, rule: Rule) -> float:
    """The probability that one `-m` match holds for the packet (0 or 1 except `statistic`)."""
    name = module.name
    if name == "comment":
        return 1.0
    if name == "statistic":
        return statistic_match(module, rule)
    held: bool
    if name in ("tcp", "udp", "sctp"):
        held = packet.protocol == name and all(
            option_holds(option, port_match(key, option, packet, rule))
            for key, option in module.options.items()
        )
    elif name == "multiport":
        option = only_option(module, ("--dports", "--destination-ports"), rule)
        ports = option.value.split(",")
        held = option_holds(option, any(in_port_range(packet, port) for port in ports))
    elif name == "recent":
        held = recent_match(module, packet, rule)
    elif name in ("conntrack", "state"):
        option = only_option(module, ("--ctstate", "--state"), rule)
        held = option_holds(option, packet.ct_state in option.value.split(","))
    elif name == "addrtype":
        # kube-proxy's last KUBE-SERVICES rule: `-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`
        option = only_option(module, ("--dst-type",), rule)
        if option.value != "LOCAL":
            raise UntraceableRules(f"addrtype --dst-type {option.value} is not traced: {rule.text}")
        held = option_holds(option, packet.local_destination)
    elif name == "mark":
        option = only_option(module, ("--mark",), rule)
        value, _, mask = option.value.partition("/")
        wanted, bits = int(value, 0), int(mask, 0) if mask else MARK_MASK
        held = option_holds(option, packet.mark & bits == wanted)
    else:
        raise UntraceableRules(f"match -m {name} is not traced: {rule.text}")
    return 1.0 if held else 0.0


def statistic_match(module: Module, rule: Rule) -> float:
    mode = module.options.get("--mode")
    probability = module.options.get("--probability")
    if mode is None or mode.value != "random" or probability is None:
        raise UntraceableRules(f"only statistic --mode random is traced: {rule.text}")
    exact = tracing.statistic_probability(probability.value)
    return 1.0 - exact if probability.negated else exact


def recent_match(module: Module, packet: Packet, rule: Rule) -> bool:
    options = module.options
    if "--rdest" in options:
        raise UntraceableRules(f"recent --rdest is not traced: {rule.text}")
    listed = recent_name(module) in packet.remembered
    for check in ("--rcheck", "--update", "--remove"):
        if check in options:
            return option_holds(options[check], listed)
    if "--set" in options:
        return option_holds(options["--set"], True)
    raise UntraceableRules(f"recent without --set or --rcheck: {rule.text}")


def recent_name(module: Module) -> str:
    """The list a `-m recent` match reads or writes ("DEFAULT" without --name)."""
    return module.options.get("--name", Option(False, ("DEFAULT",))).value


def port_match(key: str, option: Option, packet: Packet, rule: Rule) -> bool:
    if key in ("--dport", "--destination-port"):
        return in_port_range(packet, option.value)
    raise UntraceableRules(f"option {key} is not traced: {rule.text}")


def in_port_range(packet: Packet, spec: str) -> bool:
    low, _, high = spec.partition(":")
    return int(low) <= packet.destination_port <= int(high or low)


def only_option(module: Module, names: tuple[str, ...], rule: Rule) -> Option:
    """The module's one option among `names`; untraceable if it has any other."""
    if len(module.options) != 1 or next(iter(module.options)) not in names:
        raise UntraceableRules(f"-m {module.name} options are not traced: {rule.text}")
    return next(iter(module.options.values()))


def option_holds(option: Option, held: bool) -> bool:
    return held != option.negated


def in_network(address: str, network: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)


def dnat_verdict(rule: Rule, packet: Packet) -> Verdict:
    """`--to-destination ip[:port]` (one address, one port; ranges are not traced)."""
    spec = rule.target_options.get("--to-destination", Option(False, ("",))).value
    address, _, port = spec.partition(":")
    if not address or "-" in spec:
        raise UntraceableRules(f"DNAT destination {spec!r} is not traced: {rule.text}")
    return Verdict(tracing.Kind.DNAT, address, int(port) if port else packet.destination_port)


def marked(rule: Rule, mark: int) -> int:
    """The packet mark after a MARK target (iptables-save prints --set-xmark value/mask)."""
    for name, option in rule.target_options.items():
        value, _, mask_text = option.value.partition("/")
        number = int(value, 0)
        mask = int(mask_text, 0) if mask_text else MARK_MASK
        if name == "--set-xmark":
            return (mark & ~mask & MARK_MASK) ^ number
        if name == "--set-mark":
            return (mark & ~mask & MARK_MASK) | number
        if name == "--or-mark":
            return mark | number
        if name == "--and-mark":
            return mark & number
        if name == "--xor-mark":
            return mark ^ number
    raise UntraceableRules(f"MARK without a mark option: {rule.text}")


class IptablesRuleset:
    """A parsed dump that can trace packets (the `Traceable` of the iptables proxy)."""

    def __init__(self, tables: dict[str, Table], where: str) -> None:
        self.tables = tables
        self.description = f"iptables-save in {where}"

    def trace(self, packet: Packet) -> dict[Verdict, float]:
        stages: list[tracing.BaseChain[Rule]] = []
        for table_name, chain in FORWARD_PATH:
            table = self.tables.get(table_name)
            if table is None or chain not in table.chains:
                continue
            policy = TERMINAL_TARGETS.get(table.policies.get(chain, "ACCEPT"), tracing.ACCEPT)
            stages.append(
                tracing.BaseChain(
                    IptablesChains(table), chain, policy, table_name == "nat", DELIVERY.get(chain)
                )
            )
        return tracing.run_hooks(stages, packet)

    def remembering(self, address: str, port: int) -> frozenset[str]:
        """The recent lists a connection DNATed to `address:port` adds its client to.

        A list belongs to a destination when a rule with `-m recent --set --name N` is followed,
        in the same chain (or the same rule), by a DNAT to it, as in kube-proxy's KUBE-SEP chains.
        """
        names: set[str] = set()
        for table in self.tables.values():
            for rules in table.chains.values():
                pending: set[str] = set()
                for rule in rules:
                    for module in rule.modules:
                        if module.name == "recent" and "--set" in module.options:
                            pending.add(recent_name(module))
                    if rule.target == "DNAT" and pending:
                        probe = Packet("0.0.0.0", address, "tcp", port)
                        verdict = dnat_verdict(rule, probe)
                        if (verdict.address, verdict.port) == (address, port):
                            names |= pending
                        pending = set()
        return frozenset(names)
