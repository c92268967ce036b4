"""A route for the Service range in the node namespace, so that REJECT can answer.

kube-proxy's REJECT for a Service without endpoints sits in the filter table's FORWARD (iptables
KUBE-SERVICES, nftables `filter-forward`) and OUTPUT hooks (`pkg/proxy/iptables/proxier.go`,
`pkg/proxy/nftables/proxier.go: nftablesJumpChains`). A packet to a VIP that no rule translated
reaches FORWARD only if the node can route it: on a real node its default route does. A node
namespace with no route for the Service range answers ICMP "network unreachable" before any
hook, so clients see an unreachable network instead of a refused connection.

If the node has no route to the Service range, the kernel-rule proxies add `SERVICE_CIDR dev lo`
there (a unicast route, so forwarded packets pass FORWARD like those of a real node's default
route; an untranslated packet that is not rejected goes nowhere, as it would leave a real node)
and remove it on stop. A route the node already has is left alone.
"""

from __future__ import annotations

import ipaddress

from harness.proxies.rules.commands import run_in_netns

NO_ROUTE = 2  # `ip route get` exit code when the destination is unreachable


def has_route(netns: str, cidr: str) -> bool:
    """Whether the namespace routes the first address of `cidr` anywhere."""
    first = next(ipaddress.ip_network(cidr, strict=False).hosts())
    output = run_in_netns(netns, ["ip", "route", "get", str(first)], ok_codes=(0, NO_ROUTE))
    return bool(output.strip())


def ensure_service_route(netns: str, cidr: str) -> bool:
    """Add `cidr dev lo` unless the namespace routes the range; True when it was added."""
    if has_route(netns, cidr):
        return False
    run_in_netns(netns, ["ip", "route", "add", cidr, "dev", "lo"])
    return True


def remove_service_route(netns: str, cidr: str) -> None:
    """Remove the route `ensure_service_route` added (no error if it is gone already)."""
    run_in_netns(netns, ["ip", "route", "del", cidr, "dev", "lo"], ok_codes=(0, NO_ROUTE))
