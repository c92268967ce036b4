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

Dumping conntrack walks the global hash table (about 10 ms here), so the namespace's entry count
is read first, from a `nf_conntrack_count` file opened inside the namespace (O(1)); with no
entries there is nothing to delete and no command runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from harness.errors import EnvironmentProblem
from harness.local.names import netns_path
from harness.local.netns import entered, in_thread
from harness.proxies.rules.commands import run_in_netns
from harness.proxies.rules.plan import Flow, PortPlan

COUNT_FILE = "/proc/sys/net/netfilter/nf_conntrack_count"
LIST_ABOVE = 32
"""Above this many flows to delete, the table is listed once and only the flows it holds are
deleted: each `-D` line walks the whole table, so a first sync of 5,000 Services deleting each
port's untranslated entries took 5,000 walks (over the 30 s command bound with entries held)."""
NOTHING_DELETED = 1  # conntrack's exit code when no entry matched


def delete_command(flow: Flow) -> str:
    """One `conntrack -R` line deleting the flow's entries."""
    return (
        f"-D -p {flow.protocol} --orig-dst {flow.cluster_ip} --orig-port-dst {flow.port} "
        f"--reply-src {flow.endpoint_ip} --reply-port-src {flow.endpoint_port}"
    )


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
            wanted &= self.held()
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
