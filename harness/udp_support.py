"""Whether a run generates UDP (issue 12) or SCTP Services (issue 12 item 3): the `udp` and
`sctp` features reaching the search.

A proxy declares the conformance features it supports (`harness.features`); one that does not
declare `udp` (userspace, nginx, haproxy, an external proxy whose `hello` omits it) is reported
`unsupported` for it, and the search must then not generate UDP Services for it, or every UDP
Service would fail properties the implementation never claimed. The target must also be able to
send UDP (`sends_udp`: the model; the local cluster, whose client agents send datagrams; the
kube target, whose client pods run bounded `nc` loops, `harness.kube.udp`, and whose `--pods
local` clients send as the local cluster's do). A target without the attribute gets no UDP
Service. SCTP alike: the `sctp` feature declared (the iptables and nftables proxies) and a
target that sends SCTP (`sends_sctp`: the model; the local cluster where the kernel tracks SCTP,
`harness.protocols`; not the kube target).

Reads declarations only; changes nothing.
"""

from __future__ import annotations

from harness.features import SCTP_FEATURE, UDP_FEATURE
from harness.targets.base import target_features


def generates_udp(target: object) -> bool:
    """Whether the search may create UDP Services on `target`: it sends UDP (`sends_udp`
    attribute) and its declaration includes the `udp` feature. UsageError (one line) for a bad
    declaration, as `target_features`."""
    return _generates(target, "sends_udp", UDP_FEATURE)


def generates_sctp(target: object) -> bool:
    """Whether the search may create SCTP Services on `target`: it sends SCTP (`sends_sctp`
    attribute) and its declaration includes the `sctp` feature. UsageError (one line) for a bad
    declaration, as `target_features`."""
    return _generates(target, "sends_sctp", SCTP_FEATURE)


def _generates(target: object, sends: str, feature: str) -> bool:
    if not getattr(target, sends, False):
        return False
    supported, _ = target_features(target)
    return feature in supported
