"""Tracing a new TCP connection through an nftables ruleset read with `nft -j list ruleset`.

A forwarded packet passes every `ip` and `inet` base chain on the prerouting hook, then on the
forward hook, each hook's chains in priority order. The statements kube-proxy's nftables mode
writes (`pkg/proxy/nftables/proxier.go`) are evaluated exactly; anything else raises
`UntraceableRules`:

- matches on `ip saddr/daddr/protocol`, `th|tcp|udp dport`, `meta l4proto|mark`, `ct state`,
  `fib daddr type` (`Packet.local_destination`),
  with literals, prefixes, ranges, anonymous sets and named sets;
- verdict maps (`vmap`) keyed by concatenations, and `numgen random mod n [offset o] vmap {...}`,
  which splits the branch into n equal shares of 1/n;
- verdicts (accept, drop, reject, jump, goto, return, continue), `dnat to ip:port`, `meta mark
  set`, and statements with no effect on the first packet's path (counter, log, set updates).

Sets that rules fill at run time (`update @affinity-... { ip saddr }`) are not read from the
kernel: a client is in one exactly when its name is in `Packet.remembered`, so the trace is of a
first connection unless the caller says which affinity entry is fresh.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from harness.proxies.rules import tracing
from harness.proxies.rules.nft_ruleset import JsonValue, NamedSet, TableContents, normalise
from harness.proxies.rules.tracing import Packet, UntraceableRules, Verdict

FORWARD_HOOKS = ("prerouting", "forward", "input")
DELIVERY = {"forward": False, "input": True}
"""The hooks after routing, by whether they are on the local-delivery path (BaseChain.delivery)."""
FAMILIES = ("ip", "inet")
PROTOCOLS = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp"}
NO_EFFECT = {"counter", "log", "set", "notrack", "comment"}
SOURCE_NAT = {"masquerade", "snat"}
MARK_MASK = 0xFFFFFFFF
TERMINAL_VERDICTS = {"accept": tracing.ACCEPT, "drop": tracing.DROP, "reject": tracing.REJECT}


class NftChains:
    """One table as a `ChainSource` for the tracing engine."""

    def __init__(self, table: TableContents) -> None:
        self.table = table
        self.dynamic_sets = dynamic_sets(table)

    def rules(self, chain: str) -> Sequence[list[JsonValue]]:
        if chain not in self.table.chains:
            raise UntraceableRules(f"chain {chain} is not in table {self.table.name}")
        return self.table.chains[chain].rules

    def evaluate(self, rule: list[JsonValue], packet: Packet) -> tracing.Branches:
        return self.run(rule, 0, packet)

    def run(self, rule: list[JsonValue], index: int, packet: Packet) -> tracing.Branches:
        """The branches of a rule from statement `index` on."""
        if index == len(rule):
            return [(1.0, tracing.Next(packet))]
        kind, body = next(iter(rule[index].items()))
        if kind == "match":
            if self.matches(body, packet):
                return self.run(rule, index + 1, packet)
            return [(1.0, tracing.Next(packet))]
        if kind == "vmap":
            found = self.lookup(body, packet)
            return [(share, self.verdict(value, packet)) for share, value in found]
        if kind == "dnat":
            return [(1.0, tracing.Final(dnat_verdict(body, packet), packet))]
        if kind in SOURCE_NAT:
            return [(1.0, tracing.Final(tracing.ACCEPT, packet))]
        if kind == "mangle":
            return self.run(rule, index + 1, self.mangled(body, packet))
        if kind in NO_EFFECT:
            return self.run(rule, index + 1, packet)
        if kind == "xt":
            raise UntraceableRules(
                f"table {self.table.name} holds iptables-nft rules (xt {body.get('name')}); "
                "read it with iptables-save"
            )
        return [(1.0, self.verdict(rule[index], packet))]

    def verdict(self, statement: JsonValue, packet: Packet) -> tracing.Action:
        """The action of a verdict statement (also a verdict map's value); None continues."""
        if statement is None:
            return tracing.Next(packet)
        kind, body = next(iter(statement.items()))
        if kind == "jump":
            return tracing.Jump(body["target"], packet)
        if kind == "goto":
            return tracing.Jump(body["target"], packet, goto=True)
        if kind == "return":
            return tracing.Return(packet)
        if kind == "continue":
            return tracing.Next(packet)
        if kind in TERMINAL_VERDICTS:
            return tracing.Final(TERMINAL_VERDICTS[kind], packet)
        raise UntraceableRules(f"statement {kind} is not traced in table {self.table.name}")

    # -- values and matching ------------------------------------------------------------------
    def lookup(self, body: dict[str, Any], packet: Packet) -> list[tuple[float, JsonValue]]:
        """The values a verdict map gives, with shares (several only for numgen keys)."""
        key = body["key"]
        elements = self.elements(body["data"])
        if isinstance(key, dict) and "numgen" in key:
            numgen = key["numgen"]
            if numgen.get("mode") != "random":
                raise UntraceableRules(f"numgen mode {numgen.get('mode')} is not traced")
            modulus, offset = int(numgen["mod"]), int(numgen.get("offset", 0))
            keys = [offset + n for n in range(modulus)]
            return [(1.0 / modulus, find(elements, k)) for k in keys]
        return [(1.0, find(elements, self.value(key, packet)))]

    def elements(self, data: JsonValue) -> list[tuple[JsonValue, JsonValue]]:
        if isinstance(data, str) and data.startswith("@"):
            return self.named_set(data[1:]).elements
        if isinstance(data, dict) and "set" in data:
            return [(normalise(pair[0]), pair[1]) for pair in data["set"]]
        raise UntraceableRules(f"verdict map data {data!r} is not traced")

    def named_set(self, name: str) -> NamedSet:
        if name not in self.table.sets:
            raise UntraceableRules(f"set {name} is not in table {self.table.name}")
        return self.table.sets[name]

    def matches(self, body: dict[str, Any], packet: Packet) -> bool:
        operator: str = body["op"]
        left, right = self.value(body["left"], packet), body["right"]
        if left is None:
            return operator == "!="
        if operator in ("==", "in"):
            return self.contains(right, left, packet)
        if operator == "!=":
            return not self.contains(right, left, packet)
        raise UntraceableRules(f"match operator {operator} is not traced")

    def contains(self, right: JsonValue, value: JsonValue, packet: Packet) -> bool:
        if isinstance(right, str) and right.startswith("@"):
            name = right[1:]
            if name in self.dynamic_sets:
                return name in packet.remembered
            return any(equal(key, value) for key, _ in self.named_set(name).elements)
        if isinstance(right, dict) and "set" in right:
            return any(equal(normalise(item), value) for item in right["set"])
        if isinstance(right, list):
            return any(equal(item, value) for item in right)
        return equal(normalise(right), value)

    def value(self, expression: JsonValue, packet: Packet) -> JsonValue:
        """What an expression reads from the packet; None when the header is absent."""
        if not isinstance(expression, dict):
            return expression
        kind, body = next(iter(expression.items()))
        if kind == "payload":
            return payload_value(body, packet)
        if kind == "meta":
            meta = {"l4proto": packet.protocol, "mark": packet.mark, "nfproto": "ipv4"}
            if body["key"] not in meta:
                raise UntraceableRules(f"meta {body['key']} is not traced")
            return meta[body["key"]]
        if kind == "ct" and body.get("key") == "state":
            return frozenset({packet.ct_state.lower()})
        if kind == "fib" and body.get("result") == "type" and body.get("flags") == ["daddr"]:
            # kube-proxy's NodePort dispatch: `fib daddr type local`
            return "local" if packet.local_destination else "unicast"
        if kind == "concat":
            return tuple(self.value(part, packet) for part in body)
        if kind in ("&", "|", "^"):
            first, second = (self.value(part, packet) for part in body)
            return {"&": first & second, "|": first | second, "^": first ^ second}[kind]
        raise UntraceableRules(f"expression {kind} is not traced in table {self.table.name}")

    def mangled(self, body: dict[str, Any], packet: Packet) -> Packet:
        if body["key"] != {"meta": {"key": "mark"}}:
            raise UntraceableRules(f"mangle of {body['key']} is not traced")
        return replace(packet, mark=int(self.value(body["value"], packet)) & MARK_MASK)


def payload_value(body: dict[str, Any], packet: Packet) -> JsonValue:
    protocol, field = body["protocol"], body["field"]
    if protocol == "ip":
        values = {"saddr": packet.source, "daddr": packet.destination, "protocol": packet.protocol}
        if field in values:
            return values[field]
    elif field == "dport" and protocol in ("th", "tcp", "udp", "sctp"):
        if protocol != "th" and protocol != packet.protocol:
            return None
        return packet.destination_port
    raise UntraceableRules(f"payload {protocol} {field} is not traced")


def equal(pattern: JsonValue, value: JsonValue) -> bool:
    """Whether a literal, prefix, range or concatenation from the rules matches a packet value."""
    if isinstance(value, frozenset):
        return bool(pattern in value)
    if isinstance(pattern, tuple) and isinstance(value, tuple):
        return len(pattern) == len(value) and all(map(equal, pattern, value))
    if isinstance(pattern, dict):
        if "prefix" in pattern:
            network = f"{pattern['prefix']['addr']}/{pattern['prefix']['len']}"
            return ipaddress.ip_address(value) in ipaddress.ip_network(network, strict=False)
        if "range" in pattern:
            low, high = pattern["range"]
            return bool(comparable(low) <= comparable(value) <= comparable(high))
        raise UntraceableRules(f"set element {pattern!r} is not traced")
    if isinstance(pattern, int) and isinstance(value, str):
        return PROTOCOLS.get(pattern) == value
    return bool(comparable(pattern) == comparable(value))


def comparable(value: JsonValue) -> Any:
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            return value
    return value


def find(elements: list[tuple[JsonValue, JsonValue]], key: JsonValue) -> JsonValue:
    """The value of the first element whose key matches, or None."""
    for element_key, element_value in elements:
        if equal(element_key, key):
            return element_value
    return None


def dnat_verdict(body: dict[str, Any], packet: Packet) -> Verdict:
    address = body.get("addr")
    if not isinstance(address, str):
        raise UntraceableRules(f"dnat to {address!r} is not traced")
    return Verdict(tracing.Kind.DNAT, address, int(body.get("port", packet.destination_port)))


def dynamic_sets(table: TableContents) -> set[str]:
    """Sets that rules add packets' fields to: their contents are run-time state."""
    names = set()
    for chain in table.chains.values():
        for rule in chain.rules:
            for statement in rule:
                if "set" in statement and statement["set"].get("op") in ("add", "update"):
                    names.add(statement["set"]["set"].lstrip("@"))
    return names


class NftRuleset:
    """A parsed ruleset that can trace packets (the `Traceable` of the nftables proxy)."""

    def __init__(self, tables: dict[tuple[str, str], TableContents], where: str) -> None:
        self.tables = tables
        self.description = f"nft list ruleset in {where}"

    def trace(self, packet: Packet) -> dict[Verdict, float]:
        stages: list[tracing.BaseChain[list[JsonValue]]] = []
        for hook in FORWARD_HOOKS:
            found = []
            for (family, _), table in self.tables.items():
                if family not in FAMILIES:
                    continue
                source = NftChains(table)
                for chain in table.chains.values():
                    if chain.hook == hook:
                        policy = tracing.DROP if chain.policy == "drop" else tracing.ACCEPT
                        stage = tracing.BaseChain(
                            source, chain.name, policy, chain.type == "nat", DELIVERY.get(hook)
                        )
                        found.append((chain.priority, stage))
            stages.extend(stage for _, stage in sorted(found, key=lambda item: item[0]))
        return tracing.run_hooks(stages, packet)

    def remembering(self, address: str, port: int) -> frozenset[str]:
        """The dynamic sets a connection DNATed to `address:port` adds its client to: those a
        chain updates before its `dnat to address:port`, as kube-proxy's endpoint chains do."""
        names: set[str] = set()
        probe = Packet("0.0.0.0", address, "tcp", port)
        for table in self.tables.values():
            for chain in table.chains.values():
                pending: set[str] = set()
                for rule in chain.rules:
                    for statement in rule:
                        if "set" in statement and statement["set"].get("op") in ("add", "update"):
                            pending.add(statement["set"]["set"].lstrip("@"))
                        elif "dnat" in statement and pending:
                            verdict = dnat_verdict(statement["dnat"], probe)
                            if (verdict.address, verdict.port) == (address, port):
                                names |= pending
                            pending = set()
        return frozenset(names)
