"""Reading a node's programmed Service rules: the kube target's rule oracle.

Where the harness can run commands on the node whose proxy its clients use, it reads the rules
back, recognises kube-proxy's layout and traces a new connection through them with the rule
oracle the harness's own kernel proxies use (`harness.proxies.rules`: `tracePacket` made exact):

- `--pods local`: the proxy runs in the node network namespace the harness made; the rules are
  read with `nsenter --net=/run/netns/NODE` (`netns_reader`).
- `--pods cluster` with `--read-node-rules`: a short-lived privileged hostNetwork pod on each
  mapped node (`harness.kube.objects.node_reader_manifest`), read through `pods/exec`
  (`pod_reader`); `NodeReaders` creates them, waits for them and deletes them again.

Layouts (`detect`), read the way kube-proxy writes them:

- kube-proxy nftables mode (`pkg/proxy/nftables/proxier.go: setupNFTables`): an `ip` table with a
  `services` chain and the `service-ips` verdict map (kube-proxy's is `ip kube-proxy`; the
  harness's own stand-in prefixes the name). Only that table is traced.
- kube-proxy iptables mode (`pkg/proxy/iptables/proxier.go`): a `nat` table with a
  `KUBE-SERVICES` chain, read with the first of `iptables-save`, `iptables-nft-save`,
  `iptables-legacy-save` that shows it (kube-proxy's image picks a backend itself,
  iptables-wrapper); the whole dump's forward path is traced.

Anything else (another proxy: nginx, haproxy, eBPF; or rules the tracer cannot evaluate) is
*unsupported*, with one line saying why: `exact-balance` is then skipped with that reason, never
failed. Reading changes nothing on the node and sends no traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from harness.clock import Clock
from harness.errors import HarnessError
from harness.model.endpoints import resolve_port
from harness.model.objects import Backend, EndpointSlice, Pod, ServicePort
from harness.proxies.rules.commands import run_in_netns
from harness.proxies.rules.iptables_save import parse_iptables_save
from harness.proxies.rules.iptables_trace import IptablesRuleset
from harness.proxies.rules.kernel_proxy import BackendLookup, Traceable
from harness.proxies.rules.nft_ruleset import TableContents, parse_nft_json
from harness.proxies.rules.nft_trace import NftRuleset
from harness.proxies.rules.tracing import Packet, UntraceableRules, to_reachability
from harness.traffic import Reachability

# argv -> the command's standard output; raises HarnessError when it cannot run
Run = Callable[[Sequence[str]], str]

NFT_COMMAND = ("nft", "-j", "list", "ruleset")
IPTABLES_COMMANDS = (("iptables-save",), ("iptables-nft-save",), ("iptables-legacy-save",))
NFT_DISPATCH_CHAIN = "services"
NFT_DISPATCH_MAP = "service-ips"
IPTABLES_DISPATCH_CHAIN = "KUBE-SERVICES"
LAYOUT_WAIT_S = 15.0  # a proxy started with the run writes its first rules within a sync or two
LAYOUT_POLL_S = 0.25
PROBE = Packet("192.0.2.1", "192.0.2.2", "tcp", 9)  # TEST-NET-1 (RFC 5737): no Service's
NOT_RECOGNISED = (
    "the node's rules are not kube-proxy's iptables or nftables layout (another proxy, or none"
    " programmed yet)"
)


class Layout(StrEnum):
    IPTABLES = "kube-proxy iptables"
    NFTABLES = "kube-proxy nftables"


class UnsupportedRules(HarnessError):
    """The node's rules are not a layout the oracle traces (the message says why)."""


@dataclass(frozen=True)
class NodeRules:
    """Rules read from one node, recognised as `layout`, ready to trace."""

    layout: Layout
    rules: Traceable

    def reachability(self, packet: Packet, backend_of: BackendLookup) -> Reachability:
        """Where `packet` (the first of a new connection) goes, with DNAT destinations named
        by `backend_of`. UnsupportedRules when the tracer meets a rule it cannot evaluate."""
        try:
            outcomes = self.rules.trace(packet)
        except UntraceableRules as error:
            raise UnsupportedRules(f"{self.layout} rules cannot be traced: {error}") from None
        return to_reachability(outcomes, backend_of, f"{self.layout}, {self.rules.description}")


def nft_kube_proxy_tables(text: str) -> dict[tuple[str, str], TableContents]:
    """The `ip` tables of an `nft -j list ruleset` that hold kube-proxy's nftables layout."""
    if not text.strip():
        return {}
    try:
        tables = parse_nft_json(text)
    except (UntraceableRules, KeyError, TypeError, StopIteration, AttributeError):
        return {}
    return {
        key: table
        for key, table in tables.items()
        if key[0] == "ip" and NFT_DISPATCH_CHAIN in table.chains and NFT_DISPATCH_MAP in table.sets
    }


def detect(run: Run, where: str, first: Layout = Layout.NFTABLES) -> NodeRules:
    """Read the node's rules through `run` and recognise kube-proxy's layout.

    The nftables layout is looked for first unless `first` says otherwise (a node in nftables
    mode may still show iptables chains of an earlier mode's leftovers, never the reverse; a
    caller that found iptables before saves a read by asking for it first). UnsupportedRules,
    one line, when neither layout is there or both tools are missing.
    """
    problems: list[str] = []
    readers = (nft_layout, iptables_layout)
    for read in readers if first is Layout.NFTABLES else reversed(readers):
        found = read(run, where, problems)
        if found is not None:
            return found
    missing = f" ({problems[0]})" if problems else ""
    raise UnsupportedRules(f"{NOT_RECOGNISED} on {where}{missing}")


def nft_layout(run: Run, where: str, problems: list[str]) -> NodeRules | None:
    """kube-proxy's nftables layout from `nft -j list ruleset`, or None (a tool that cannot run
    is added to `problems`)."""
    try:
        found = nft_kube_proxy_tables(run(NFT_COMMAND))
    except HarnessError as error:
        problems.append(str(error))
        return None
    if len(found) > 1:
        names = ", ".join(f"{family} {name}" for family, name in sorted(found))
        raise UnsupportedRules(f"several kube-proxy nftables tables on {where}: {names}")
    return NodeRules(Layout.NFTABLES, NftRuleset(found, where)) if found else None


def iptables_layout(run: Run, where: str, problems: list[str]) -> NodeRules | None:
    """kube-proxy's iptables layout from the first iptables-save variant that shows it."""
    for argv in IPTABLES_COMMANDS:
        try:
            tables = parse_iptables_save(run(argv))
        except HarnessError as error:
            problems.append(str(error))
            continue
        nat = tables.get("nat")
        if nat is not None and IPTABLES_DISPATCH_CHAIN in nat.chains:
            ruleset = IptablesRuleset(tables, where)
            ruleset.description = f"{argv[0]} on {where}"
            return NodeRules(Layout.IPTABLES, ruleset)
    return None


def wait_for_layout(run: Run, where: str, clock: Clock, wait_s: float = LAYOUT_WAIT_S) -> NodeRules:
    """`detect`, retried until a layout appears or `wait_s` passes (a proxy started with the
    run has not synced yet); then the last UnsupportedRules. Bounded by `wait_s` plus one read."""
    deadline_s = clock.now() + wait_s
    while True:
        try:
            return probed(detect(run, where))
        except UnsupportedRules:
            if clock.now() >= deadline_s:
                raise
        clock.sleep(min(LAYOUT_POLL_S, max(deadline_s - clock.now(), 0.0)))


def probed(rules: NodeRules) -> NodeRules:
    """`rules`, once a packet no Service owns was traced through every dispatch rule, so that a
    construct the tracer cannot evaluate (outside the per-Service chains) is UnsupportedRules
    before the run rather than in the middle of it."""
    try:
        rules.rules.trace(PROBE)
    except UntraceableRules as error:
        raise UnsupportedRules(f"{rules.layout} rules cannot be traced: {error}") from None
    return rules


def netns_reader(netns: str) -> Run:
    """Run rule tools inside network namespace `netns` (never in the root namespace)."""

    def run(argv: Sequence[str]) -> str:
        return run_in_netns(netns, argv)

    return run


# pod name, argv, timeout in seconds -> stdout (harness.kube.traffic.Exec)
PodExec = Callable[[str, Sequence[str], float], str]
READ_TIMEOUT_S = 60.0


def pod_reader(exec_function: PodExec, pod: str) -> Run:
    """Run rule tools in a reader pod through `pods/exec`. A tool the image lacks prints nothing
    on stdout (exec reports no exit code), which `detect` reads as "no rules of that kind"."""

    def run(argv: Sequence[str]) -> str:
        return exec_function(pod, list(argv), READ_TIMEOUT_S)

    return run


def backend_lookup(
    slices: Iterable[EndpointSlice],
    port: ServicePort,
    pods: Iterable[tuple[Pod, str | None]],
) -> BackendLookup:
    """Backends by DNAT destination (address, port): first the Service's published endpoints,
    then every pod the target knows (`(model pod, its real IP)`) at the port the Service port
    resolves to on it, so a rule left behind for a pod no longer listed is still named. An
    unknown destination is `Backend("?", "ip:port")`."""
    known: dict[tuple[str, int], Backend] = {}
    for endpoint_slice in slices:
        endpoint_port = endpoint_slice.port_for(port.name)
        if endpoint_port is None:
            continue
        for endpoint in endpoint_slice.endpoints:
            known.setdefault((endpoint.address, endpoint_port), endpoint.backend)
    for pod, address in pods:
        resolved = resolve_port(port, pod)
        if address and resolved is not None:
            known.setdefault((address, resolved.port), Backend(pod.name, pod.uid))
    return BackendLookup(known)
