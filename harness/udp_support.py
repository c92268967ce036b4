"""Whether a run generates UDP Services (issue 12): the `udp` feature reaching the search.

A proxy declares the conformance features it supports (`harness.features`); one that does not
declare `udp` (userspace, nginx, haproxy, an external proxy whose `hello` omits it) is reported
`unsupported` for it, and the search must then not generate UDP Services for it, or every UDP
Service would fail properties the implementation never claimed. The target must also be able to
send UDP (`sends_udp`: the model; the local cluster, whose client agents send datagrams; the
kube target, whose client pods run bounded `nc` loops, `harness.kube.udp`, and whose `--pods
local` clients send as the local cluster's do). A target without the attribute gets no UDP
Service.

Reads declarations only; changes nothing.
"""

from __future__ import annotations

from harness.features import UDP_FEATURE
from harness.targets.base import target_features


def generates_udp(target: object) -> bool:
    """Whether the search may create UDP Services on `target`: it sends UDP (`sends_udp`
    attribute) and its declaration includes the `udp` feature. UsageError (one line) for a bad
    declaration, as `target_features`."""
    if not getattr(target, "sends_udp", False):
        return False
    supported, _ = target_features(target)
    return UDP_FEATURE in supported
