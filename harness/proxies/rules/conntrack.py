"""Clearing the conntrack entries of flows whose endpoint a sync removed.

What kube-proxy does (`pkg/proxy/conntrack/cleanup.go: CleanStaleEntries`, called at the end of
`syncProxyRules` in both the iptables and nftables proxiers): after the new rules are in, it
deletes the conntrack entries of **UDP** flows DNATed to an endpoint that is no longer used
(`conntrack -D --orig-dst VIP --dst-nat ENDPOINT -p udp`, today over netlink). UDP has no
connection to end, so without this a client that keeps its 5-tuple keeps reaching a dead
endpoint forever (kubernetes#19029, #59368, #105657, #139628). It leaves TCP alone: a TCP entry
to a dead pod dies with its connection (the client sees resets or timeouts, and a new
connection takes the new rules), and deleting the entry does not move an open connection.

What the harness does: it serves TCP and UDP, and its checks ask that no traffic reach a removed
endpoint once the change is programmed. So after each sync the proxies delete, for every flow
they no longer program, the entries of the flow's protocol whose original destination is the
Service's VIP and port and whose reply comes from the endpoint (`conntrack -D -p tcp|udp
--orig-dst VIP --orig-port-dst PORT --reply-src POD_IP --reply-port-src POD_PORT`, all deletions
of one sync in one `conntrack -R -` batch inside the node namespace). The next packet of such a
TCP connection is traced anew and reaches a current endpoint, which resets it: the client learns
at once instead of talking to a pod the Service no longer lists. The next datagram of such a UDP
flow is translated anew, to a usable endpoint (or REJECTed): what a held UDP flow is judged by
(`harness.checks.udp_flows`); `mutant-iptables-keeps-udp-conntrack` skips the UDP deletions.
Entries of flows still programmed are never touched, so a flow to a usable endpoint survives
every sync and a proxy restart (kubernetes#122740).

Untranslated entries: a Service the proxy does not program (an opted-out one, I13) leaves new
connections to its VIP untranslated, and the node forwards them to its Service-range sink, so
conntrack confirms an unreplied, un-NATed entry for each (held for the SYN_SENT timeout, 120 s).
When the Service is programmed again (its opt-out label removed, or its VIP reused), a client
that reuses such a 5-tuple would match the old entry and never be translated. So when a Service
becomes programmed the proxies also delete its VIP's entries whose reply comes from the VIP
itself (`untranslated`: `--reply-src VIP --reply-port-src PORT`). kube-proxy has no such TCP
entries to clear where it REJECTs (the packet is dropped before conntrack confirms it); for UDP
it clears the analogous stale entries when a Service gets endpoints (kubernetes#48370).

Reconciling at a start (kube-proxy since v1.32: `pkg/proxy/conntrack/cleanup.go:
CleanStaleEntries`, kubernetes PR #127318 for issue #126130, extended to Services without
endpoints by PR #139629): the removals above are events, and a restarted proxy never saw the
changes made while it was down, so its first sync lists the table once and deletes every
**UDP** entry whose original destination is a programmed Service port's VIP and port
and whose reply source is not one of that port's current endpoints (also the untranslated ones,
and all of a port without endpoints), and every translated UDP entry to a VIP in the Service
range that no Service port programs any more (its Service was deleted meanwhile; upstream clears
those from the delete event, PR #141371, which a restarted proxy never gets) (`stale_flows`,
`ConntrackCleaner.reconcile`). TCP is left as above; an entry whose reply source is a current
endpoint is never touched, so a flow to a usable endpoint survives the restart
(kubernetes#122740). Before the reconciler, changes made while kube-proxy was down left such
entries behind (kubernetes#105657's unready endpoints, #122740).
`mutant-iptables-forgets-while-down` does not reconcile.

Node ports (kubernetes#59368, fixed by PR #71573; since v1.32 the `*:NodePort` filter of
`CleanStaleEntries`): a flow from outside to a node's address on a node port is DNATed like one
to the VIP, but its entry's original destination is the node's address, so deleting by VIP
alone leaves it: a client that keeps its 5-tuple keeps reaching the removed endpoint (the
#59368 blackhole). So a plan's flows also stand for its node port (`PortPlan.flows`: original
destination `ANY`, the node port, each external destination), and deleting one leaves out
`--orig-dst` (`conntrack -D -p udp --orig-port-dst NODEPORT --reply-src POD ...`, upstream's
`ClearEntriesForPortNAT`). When a node port gains its first external destinations (a new port,
or one that had none), every UDP entry of that port number goes (`node_ports_gained`:
`conntrack -D -p udp --orig-port-dst NODEPORT`, upstream's `ClearEntriesForPort`): entries made
while nothing was programmed there are untranslated and would keep the flow off the new
endpoints. A start's reconcile deletes every UDP entry to a node port (original destination
outside the Service range) whose reply source is not one of that port's external destinations.
`mutant-iptables-keeps-nodeport-udp-conntrack` deletes by VIP only, as before the #59368 fix.

Dumping conntrack walks the global hash table (about 10 ms here), so the namespace's entry count
is read first, from a `nf_conntrack_count` file opened inside the namespace (O(1)); with no
entries there is nothing to delete and no command runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from harness.errors import EnvironmentProblem
from harness.local.names import netns_path
from harness.local.netns import entered, in_thread
from harness.proxies.rules.commands import run_in_netns
from harness.proxies.rules.plan import ANY, Flow, PortPlan

COUNT_FILE = "/proc/sys/net/netfilter/nf_conntrack_count"
LIST_ABOVE = 32
"""Above this many flows to delete, the table is listed once and only the flows it holds are
deleted: each `-D` line walks the whole table, so a first sync of 5,000 Services deleting each
port's untranslated entries took 5,000 walks (over the 30 s command bound with entries held)."""
NOTHING_DELETED = 1  # conntrack's exit code when no entry matched


def delete_command(flow: Flow) -> str:
    """One `conntrack -R` line deleting the flow's entries; a field that is `ANY` is left out
    (a node-port flow matches every original destination; a whole port every reply)."""
    words = [f"-D -p {flow.protocol}"]
    if flow.cluster_ip != ANY:
        words.append(f"--orig-dst {flow.cluster_ip}")
    words.append(f"--orig-port-dst {flow.port}")
    if flow.endpoint_ip != ANY:
        words.append(f"--reply-src {flow.endpoint_ip} --reply-port-src {flow.endpoint_port}")
    return " ".join(words)


def matches(pattern: Flow, flow: Flow) -> bool:
    """Whether the concrete `flow` (a listed entry) is one of `pattern`'s (`ANY` fields match
    every value). Pure."""
    return (
        pattern.protocol == flow.protocol
        and pattern.port == flow.port
        and pattern.cluster_ip in (ANY, flow.cluster_ip)
        and pattern.endpoint_ip in (ANY, flow.endpoint_ip)
        and (pattern.endpoint_ip == ANY or pattern.endpoint_port == flow.endpoint_port)
    )


def held_among(wanted: Iterable[Flow], held: set[Flow]) -> set[Flow]:
    """The flows of `wanted` the table holds entries of (`held`, concrete): a concrete one that
    is listed, a pattern (`ANY` fields) that matches a listed one. Pure."""
    found = set()
    for flow in wanted:
        if flow in held or (
            ANY in (flow.cluster_ip, flow.endpoint_ip) and any(matches(flow, h) for h in held)
        ):
            found.add(flow)
    return found


def node_ports_gained(old: Iterable[PortPlan], new: Iterable[PortPlan]) -> set[Flow]:
    """The whole-port flows (`Flow(protocol, ANY, NODEPORT, ANY, 0)`) of the `RECONCILED_PROTOCOLS`
    node ports that have external destinations in `new` and had none in `old` (a new node port,
    or one that was dropped or rejected): upstream's `ClearEntriesForPort` when a Service port
    gains its first endpoints (kubernetes#48370 and #59368). Pure."""
    had = {
        (plan.protocol, plan.node_port)
        for plan in old
        if plan.node_port is not None and plan.external
    }
    return {
        Flow(plan.protocol, ANY, plan.node_port, ANY, 0)
        for plan in new
        if plan.node_port is not None
        and plan.external
        and plan.protocol in RECONCILED_PROTOCOLS
        and (plan.protocol, plan.node_port) not in had
    }


def untranslated(plans: Iterable[PortPlan]) -> set[Flow]:
    """The flows that stand for each port's untranslated entries: from the VIP to itself."""
    return {
        Flow(plan.protocol, plan.cluster_ip, plan.port, plan.cluster_ip, plan.port)
        for plan in plans
    }


def flow_of(line: str) -> Flow | None:
    """The flow of one `conntrack -L` line: its protocol, original destination and port, and
    reply source and port (`tcp 6 431999 ESTABLISHED src=A dst=VIP sport=S dport=80 src=POD
    dst=A sport=8080 dport=S [ASSURED] ...`); None for a line that is not one."""
    words = line.split()
    if not words or words[0] not in ("tcp", "udp", "sctp"):
        return None
    fields: dict[str, list[str]] = {}
    for word in words:
        key, equals, value = word.partition("=")
        if equals:
            fields.setdefault(key, []).append(value)
    try:
        return Flow(
            words[0],
            fields["dst"][0],
            int(fields["dport"][0]),
            fields["src"][1],
            int(fields["sport"][1]),
        )
    except (KeyError, IndexError, ValueError):
        return None


RECONCILED_PROTOCOLS = frozenset({"udp"})
"""The protocols whose stale entries a start reconciles and whose node-port entries go when the
port gains destinations: UDP only, as kube-proxy's `CleanStaleEntries`
(pkg/proxy/conntrack/cleanup.go since v1.32, the version this follows: "we are only interested
in UDP services", "we only deal with UDP protocol entries"). Before it, `IsClearConntrackNeeded`
(pkg/util/conntrack) cleared UDP and SCTP; SCTP was dropped with the reconciler. TCP and SCTP
entries end with their connections and associations (the harness's SCTP probes abort theirs);
the per-sync deletions of removed flows (`delete_command`) stay for every protocol."""


def stale_flows(held: Iterable[Flow], plans: Iterable[PortPlan], service_cidr: str) -> set[Flow]:
    """The held flows a start must delete (`CleanStaleEntries`): of `RECONCILED_PROTOCOLS`, to a
    programmed port's VIP and port (`plans`) from a reply source that is not one of its current
    destinations, or translated to a VIP in `service_cidr` that no plan programs, or to a
    programmed node port (an original destination outside `service_cidr`) from a reply source
    that is not one of its external destinations (`*:NodePort`). Pure."""
    serving: dict[tuple[str, str, int], set[tuple[str, int]]] = {}
    node_ports: dict[tuple[str, int], set[tuple[str, int]]] = {}
    for plan in plans:
        key = (plan.protocol, plan.cluster_ip, plan.port)
        serving.setdefault(key, set()).update((d.address, d.port) for d in plan.destinations)
        if plan.node_port is not None:
            external = node_ports.setdefault((plan.protocol, plan.node_port), set())
            external.update((d.address, d.port) for d in plan.external)
    service_range = ip_network(service_cidr)
    stale: set[Flow] = set()
    for flow in held:
        if flow.protocol not in RECONCILED_PROTOCOLS:
            continue
        outside = node_ports.get((flow.protocol, flow.port))
        if outside is not None and not _within(flow.cluster_ip, service_range):
            if (flow.endpoint_ip, flow.endpoint_port) not in outside:
                stale.add(flow)
            continue
        endpoints = serving.get((flow.protocol, flow.cluster_ip, flow.port))
        if endpoints is not None:
            if (flow.endpoint_ip, flow.endpoint_port) not in endpoints:
                stale.add(flow)
        elif flow.endpoint_ip != flow.cluster_ip and _within(flow.cluster_ip, service_range):
            stale.add(flow)
    return stale


def _within(address: str, network: IPv4Network | IPv6Network) -> bool:
    try:
        return ip_address(address) in network
    except ValueError:
        return False


class ConntrackCleaner:
    """Deletes the entries of removed flows in one namespace; `close()` releases its counter."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._count_fd: int | None = None
        self.deleted_batches = 0  # how many `conntrack -R` runs this cleaner made

    def entries(self) -> int | None:
        """The namespace's conntrack entry count, or None when it cannot be read."""
        if self._count_fd is None:
            try:
                self._count_fd = in_thread(self._open_counter, timeout_s=5.0)
            except (OSError, EnvironmentProblem):
                return None  # unknown: run the deletions anyway
        try:
            return int(os.pread(self._count_fd, 32, 0))
        except (OSError, ValueError):
            return None

    def _open_counter(self) -> int:
        with entered(netns_path(self.netns)):
            return os.open(COUNT_FILE, os.O_RDONLY | os.O_CLOEXEC)

    def clear(self, flows: Iterable[Flow]) -> None:
        """Delete every entry of `flows` (TCP and UDP alike); raises EnvironmentProblem."""
        wanted = set(flows)
        if not wanted or self.entries() == 0:
            return
        if len(wanted) > LIST_ABOVE:
            wanted = held_among(wanted, self.held())
        self._delete(wanted)

    def reconcile(
        self, removed: Iterable[Flow], plans: Iterable[PortPlan], service_cidr: str
    ) -> int:
        """A start's cleanup: list the table once and delete the entries of `removed` it holds
        (as `clear`) and every stale flow (`stale_flows` against `plans`, everything now
        programmed); returns how many flows were deleted. Nothing runs when the namespace has
        no entries. Never deletes an entry whose reply source is a current endpoint of its
        port. Raises EnvironmentProblem."""
        if self.entries() == 0:
            return 0
        held = self.held()
        wanted = held_among(removed, held) | stale_flows(held, plans, service_cidr)
        self._delete(wanted)
        return len(wanted)

    def _delete(self, wanted: set[Flow]) -> None:
        """Delete the entries of `wanted` in one `conntrack -R` batch (nothing for none)."""
        lines = [delete_command(flow) for flow in sorted(wanted)]
        if not lines:
            return
        try:
            run_in_netns(
                self.netns,
                ["conntrack", "-R", "-"],
                stdin="\n".join(lines) + "\n",
                ok_codes=(0, NOTHING_DELETED),
            )
        except EnvironmentProblem as problem:
            raise EnvironmentProblem(f"clearing stale conntrack entries: {problem}") from None
        self.deleted_batches += 1

    def held(self) -> set[Flow]:
        """The flows the table holds entries of, listed once (`conntrack -L`); raises
        EnvironmentProblem."""
        try:
            listing = run_in_netns(self.netns, ["conntrack", "-L"], ok_codes=(0,))
        except EnvironmentProblem as problem:
            raise EnvironmentProblem(f"listing conntrack entries: {problem}") from None
        return {flow for line in listing.splitlines() if (flow := flow_of(line)) is not None}

    def close(self) -> None:
        if self._count_fd is not None:
            os.close(self._count_fd)
            self._count_fd = None
