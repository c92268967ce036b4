"""Dropping packets conntrack marks INVALID, as kube-proxy does (kubernetes#74839, #117924).

A TCP segment outside the window conntrack tracks for its connection (a late retransmission, or
upstream's e2e "boom" packet) is marked INVALID. An INVALID packet has no conntrack entry, so NAT
never sees it: a backend's reply goes out with the pod's own address instead of the VIP, the
client's stack knows no such connection and answers RST, and that RST, forwarded to the pod
with a sequence number in its window, resets the pod's side; the client's next segment through
the VIP then meets that reset ("Connection reset by peer", blog 2019-03-29 "kube-proxy
subtleties: debugging an intermittent connection reset").

kube-proxy drops them in its forwarding chain, and only when the node leaves
`net.netfilter.nf_conntrack_tcp_be_liberal` at 0 (with it set, conntrack marks only out-of-window
RSTs INVALID and lets the rest through, translated; PR #120412, since v1.29):

- iptables (`pkg/proxy/iptables/proxier.go: syncProxyRules`): `-A KUBE-FORWARD -m conntrack
  --ctstate INVALID -j DROP` when `!proxier.conntrackTCPLiberal`, in filter, KUBE-FORWARD being
  jumped to from FORWARD (`-m comment --comment "kubernetes forwarding rules"`);
- nftables (`pkg/proxy/nftables/proxier.go: setupNFTables`): `ct state invalid drop` in the
  chain `forward`, jumped to from `filter-forward`, under the same condition.

`NewProxier` reads the sysctl once (`sysctl.GetSysctl(sysctlNFConntrackTCPBeLiberal)`); a value it
cannot read counts as not liberal. So does `tcp_be_liberal` here, in the node's namespace (the
sysctl is per network namespace). The proxies read it and never set it: it is the node's.
"""

from __future__ import annotations

from harness.proxies.rules.commands import run_in_netns

BE_LIBERAL = "/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal"
FORWARD_COMMENT = "kubernetes forwarding rules"


def tcp_be_liberal(netns: str) -> bool:
    """Whether `nf_conntrack_tcp_be_liberal` is set (non-zero) in `netns`; False when it cannot
    be read (conntrack not loaded), as kube-proxy's `NewProxier` decides. Reads only."""
    text = run_in_netns(netns, ["cat", BE_LIBERAL], ok_codes=(0, 1))
    try:
        return int(text.strip() or "0") != 0
    except ValueError:
        return False
