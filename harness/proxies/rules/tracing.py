"""Tracing a new connection through rules read from the kernel: the shared engine.

This is kube-proxy's own unit-test oracle (`pkg/proxy/iptables/proxier_test.go: tracePacket`,
`pkg/proxy/nftables/helpers_test.go: tracePacket`) made exact: instead of listing where a packet
*can* go, every rule is evaluated on every branch, and a rule that matches at random (iptables
`-m statistic --mode random --probability p`, nftables `numgen random mod n`) splits the branch
with its probability. The result is a distribution over final verdicts: DNAT to an endpoint,
REJECT, DROP, or ACCEPT without translation (the packet would be routed to the VIP itself).

Each syntax supplies a `ChainSource` (how to evaluate one rule); `walk` follows jumps, gotos and
returns the same way for both, and `run_hooks` chains the base chains of the netfilter hooks a
forwarded packet passes (prerouting, then forward), applying DNAT between them.

The trace is of a *first* packet of a *new* connection: conntrack state is NEW, and stateful
matches (the `recent` module, nftables dynamic sets) see only the lists named in
`Packet.remembered`; by default none, so with ClientIP affinity the answer is the distribution of
a client's first connection. Passing the lists that hold the client gives the distribution of a
connection made while its affinity entry is fresh.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from harness.errors import HarnessError
from harness.model.objects import Backend
from harness.traffic import Reachability

MAX_DEPTH = 64
INVALID = "INVALID"  # `Packet.ct_state` of a segment conntrack marked invalid
STATISTIC_SCALE = 1 << 31  # xt_statistic compares a 31-bit random number to probability * 2^31


class UntraceableRules(HarnessError):
    """The rules contain something the tracer cannot evaluate exactly (one line says what)."""


@dataclass(frozen=True)
class Packet:
    """The first packet of a new connection, as far as the rules can see it."""

    source: str
    destination: str
    protocol: str
    destination_port: int
    mark: int = 0
    remembered: frozenset[str] = frozenset()
    # whether the destination is an address of the node itself (`-m addrtype --dst-type LOCAL`,
    # nft `fib daddr type local`): kube-proxy's iptables and nftables modes never make a
    # ClusterIP one, so it is False for every Service trace
    local_destination: bool = False
    # the conntrack state the rules see: NEW for a connection's first packet; INVALID for a
    # segment conntrack could not place (`harness.proxies.rules.invalid`), which NAT never sees
    ct_state: str = "NEW"


class Kind(StrEnum):
    DNAT = "dnat"
    REJECT = "reject"
    DROP = "drop"
    ACCEPT = "accept"


@dataclass(frozen=True)
class Verdict:
    """Where a traced packet ends: translated to `address:port`, rejected, dropped or accepted."""

    kind: Kind
    address: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"dnat {self.address}:{self.port}" if self.kind == Kind.DNAT else str(self.kind)


ACCEPT = Verdict(Kind.ACCEPT)
DROP = Verdict(Kind.DROP)
REJECT = Verdict(Kind.REJECT)


# -- what evaluating one rule can lead to -------------------------------------------------------
@dataclass(frozen=True)
class Next:
    """The rule did not match, or matched without a verdict: go on with the next rule."""

    packet: Packet


@dataclass(frozen=True)
class Jump:
    """Enter `chain`. When it runs out or returns, go on after the jumping rule; for a goto,
    leave the calling chain as well."""

    chain: str
    packet: Packet
    goto: bool = False


@dataclass(frozen=True)
class Return:
    packet: Packet


@dataclass(frozen=True)
class Final:
    verdict: Verdict
    packet: Packet


Action = Next | Jump | Return | Final
Branches = list[tuple[float, Action]]
Ending = tuple[float, Packet, Verdict | None]  # None: the chain ran out or returned

RuleT = TypeVar("RuleT")


class ChainSource(Protocol[RuleT]):
    """One table's chains in some syntax: the rules of a chain, and how one rule acts."""

    def rules(self, chain: str) -> Sequence[RuleT]: ...

    def evaluate(self, rule: RuleT, packet: Packet) -> Branches: ...


def statistic_probability(printed: str) -> float:
    """The kernel's exact probability behind a printed `--probability` value.

    The kernel keeps `probability * 2^31` as an integer (xt_statistic); iptables-save prints it
    with 11 decimals, which identifies the integer exactly.
    """
    return round(float(printed) * STATISTIC_SCALE) / STATISTIC_SCALE


def walk(source: ChainSource[RuleT], chain: str, packet: Packet, depth: int = 0) -> list[Ending]:
    """Every way `packet` can leave `chain`, with its probability.

    Jump: a callee that runs out or returns continues the caller after the jumping rule. Goto: it
    returns from the caller as well. A Final verdict ends the traversal of the whole hook.
    """
    if depth > MAX_DEPTH:
        raise UntraceableRules(f"chains nest deeper than {MAX_DEPTH} levels at {chain!r}")
    rules = source.rules(chain)
    endings: list[Ending] = []
    pending: list[tuple[float, int, Packet]] = [(1.0, 0, packet)]
    while pending:
        probability, index, current = pending.pop()
        if index >= len(rules):
            endings.append((probability, current, None))
            continue
        for share, action in source.evaluate(rules[index], current):
            weight = probability * share
            if weight <= 0.0:
                continue
            if isinstance(action, Next):
                pending.append((weight, index + 1, action.packet))
            elif isinstance(action, Return):
                endings.append((weight, action.packet, None))
            elif isinstance(action, Final):
                endings.append((weight, action.packet, action.verdict))
            else:
                for inner, after, verdict in walk(source, action.chain, action.packet, depth + 1):
                    if verdict is None and not action.goto:
                        pending.append((weight * inner, index + 1, after))
                    else:
                        endings.append((weight * inner, after, verdict))
    return endings


@dataclass(frozen=True)
class BaseChain(Generic[RuleT]):
    """A chain attached to a netfilter hook, with the verdict its end gives (its policy)."""

    source: ChainSource[RuleT]
    chain: str
    policy: Verdict = ACCEPT
    nat: bool = False
    delivery: bool | None = None
    """Where the chain's hook lies after routing: on the local-delivery path (INPUT: True), on
    the forwarding path (FORWARD: False), or before routing (None: every packet)."""


def run_hooks(stages: Sequence[BaseChain[Any]], packet: Packet) -> dict[Verdict, float]:
    """Pass `packet` through base chains in hook order; DNAT in one changes what later ones see.

    An ACCEPT ends one base chain and goes on to the next; DROP and REJECT end the trace; a DNAT
    (only in NAT chains) rewrites the destination and is remembered as the connection's verdict.
    Routing follows the hooks before it: a packet to a node's own address that no DNAT moved
    (`Packet.local_destination`) meets the local-delivery chains (`BaseChain.delivery` True),
    every other one the forwarding chains; a DNAT moves it to a pod, which is not local.
    """
    finals: dict[Verdict, float] = defaultdict(float)
    states: list[tuple[float, Packet, Verdict | None]] = [(1.0, packet, None)]
    for stage in stages:
        if stage.nat and packet.ct_state == INVALID:
            continue  # no conntrack entry, so the NAT hooks pass it untouched
        following: list[tuple[float, Packet, Verdict | None]] = []
        for probability, current, translated in states:
            if stage.delivery is not None and stage.delivery != current.local_destination:
                following.append((probability, current, translated))  # not on its path
                continue
            for share, after, verdict in walk(stage.source, stage.chain, current):
                weight = probability * share
                ending = verdict or stage.policy
                if ending.kind == Kind.DNAT:
                    if not stage.nat:
                        raise UntraceableRules(f"DNAT outside a NAT chain ({stage.chain})")
                    moved = replace(
                        after,
                        destination=ending.address,
                        destination_port=ending.port,
                        local_destination=False,
                    )
                    following.append((weight, moved, ending))
                elif ending.kind == Kind.ACCEPT:
                    following.append((weight, after, translated))
                else:
                    finals[ending] += weight
        states = following
    for probability, _, translated in states:
        finals[translated or ACCEPT] += probability
    return dict(finals)


def to_reachability(
    outcomes: Mapping[Verdict, float], backend_of: Callable[[str, int], Backend], detail: str
) -> Reachability:
    """The Target-level answer: backends reached by DNAT with their probabilities; `rejects` when
    some new connections are rejected, `drops` when some are dropped. Drops and untranslated
    accepts are also named in `detail`."""
    probabilities: dict[Backend, float] = defaultdict(float)
    notes = []
    for verdict, probability in sorted(outcomes.items(), key=lambda item: str(item[0])):
        if verdict.kind == Kind.DNAT:
            probabilities[backend_of(verdict.address, verdict.port)] += probability
        elif verdict.kind != Kind.REJECT:
            notes.append(f"{verdict} with probability {probability:.6f}")
    rejected = outcomes.get(REJECT, 0.0)
    if notes:
        detail = f"{detail}; " + ", ".join(notes)
    return Reachability(
        rejects=rejected > 0.0,
        probabilities=dict(probabilities),
        detail=detail,
        drops=outcomes.get(DROP, 0.0) > 0.0,
    )
