"""What the node namespace needs so that kube-proxy's REJECT answers every new connection.

kube-proxy sets the node sysctls its data plane relies on at startup (`cmd/kube-proxy/app`
server_linux.go: bridge-nf-call-iptables, route_localnet, the conntrack limits) and assumes the
node routes every address. A bare node namespace lacks two things the REJECT of a Service without
endpoints needs (`pkg/proxy/iptables/proxier.go`: filter KUBE-SERVICES from FORWARD and OUTPUT;
`pkg/proxy/nftables/proxier.go`: `filter-forward` to `service-endpoints-check`):

- **a route for the Service range.** Without one, a packet to a VIP that no rule translated is
  answered "network unreachable" before any hook runs. On a real node the default route carries
  it; here `SERVICE_CIDR dev lo` does: a unicast route, so the packet is *forwarded* and passes
  FORWARD, where REJECT answers it, and an untranslated packet nothing rejects goes nowhere, as it
  would leave a real node (a `local` route would instead let the node's own stack refuse it and
  hide a missing REJECT).
- **no ICMP rate limit.** REJECT answers with ICMP port-unreachable, which the kernel limits per
  destination (`net.ipv4.icmp_ratelimit`, 1000 ms after a burst of about ten): a client that
  opens connections quickly sees every other one time out instead of being refused. The limit is
  set to 0 in the node namespace.

Both are changed only if needed, only inside the node namespace, and undone on stop.
"""

from __future__ import annotations

import ipaddress

from harness.errors import EnvironmentProblem
from harness.local.netns import read_sysctl, write_sysctls
from harness.proxies.rules.commands import run_in_netns

NO_ROUTE = 2  # `ip route` exit code for an unreachable destination or a missing route
ICMP_RATELIMIT = "net.ipv4.icmp_ratelimit"


class NodePrerequisites:
    """Routes the Service range and lifts the ICMP rate limit in one namespace, remembering what
    it changed so that `restore()` puts back exactly that."""

    def __init__(self, netns: str, service_cidr: str) -> None:
        self.netns = netns
        self.service_cidr = service_cidr
        self.added_route = False
        self.icmp_ratelimit: str | None = None  # the value before ensure(), if it was changed

    def ensure(self) -> None:
        if not self.has_route():
            command = ["ip", "route", "add", self.service_cidr, "dev", "lo"]
            try:
                run_in_netns(self.netns, command)
            except EnvironmentProblem as problem:
                raise EnvironmentProblem(
                    f"routing the Service range via lo (is lo up in {self.netns}?): {problem}"
                ) from None
            self.added_route = True
        before = read_sysctl(self.netns, ICMP_RATELIMIT)
        if before != "0":
            write_sysctls(self.netns, {ICMP_RATELIMIT: "0"})
            self.icmp_ratelimit = before

    def restore(self) -> None:
        if self.added_route:
            command = ["ip", "route", "del", self.service_cidr, "dev", "lo"]
            run_in_netns(self.netns, command, ok_codes=(0, NO_ROUTE))
            self.added_route = False
        if self.icmp_ratelimit is not None:
            write_sysctls(self.netns, {ICMP_RATELIMIT: self.icmp_ratelimit})
            self.icmp_ratelimit = None

    def has_route(self) -> bool:
        """Whether the namespace routes the first address of the Service range anywhere."""
        first = next(ipaddress.ip_network(self.service_cidr, strict=False).hosts())
        command = ["ip", "route", "get", str(first)]
        return bool(run_in_netns(self.netns, command, ok_codes=(0, NO_ROUTE)).strip())
