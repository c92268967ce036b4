"""The UDP part of `long-lived-connections` (issue 12 item 2, invariant I14): a held UDP flow,
one client socket whose 5-tuple never changes (upstream's conntrack e2e sends from the fixed
source port 12345, `test/e2e/network/conntrack.go`), asked once after every step whose state the
proxy says is final.

UDP has no connection to end: the flow's conntrack entry keeps sending its datagrams to the
endpoint its first datagram was DNATed to until the entry expires or is deleted. kube-proxy
deletes the UDP entries of endpoints that are no longer usable after every sync
(`pkg/proxy/conntrack/cleanup.go: CleanStaleEntries`), so the next datagram is translated
anew. What each answer of a flow last answered by backend B must be, with U the Service's usable
backends now:

- **stale**: an answer from a backend not in U (B after it was deleted, made unready or
  relabelled out, or any other unusable one) is always wrong: a stale conntrack entry
  (kubernetes#19029, #59368; unready endpoints: #105657; a deleted Service: PR #141371);
- **moved**: an answer from another backend while B is still in U is wrong: the flow's entry
  was deleted although its endpoint is usable (a proxy that flushes conntrack on its restart or
  on unrelated changes: #122740, which disrupts QUIC), unless the step excuses it (below);
- **blackholed**: a failure (timeout, refused) while U is not empty is wrong: the flow's
  datagrams go nowhere while a usable endpoint exists (a dead endpoint's entry never deleted,
  #19029; scaled to 0 and back, #48370 and #139628), unless the step excuses it;
- a step **excuses** moves and failures (as for TCP, the evidence says why) when the proxy relays
  flows through its own process and just restarted, or was just shown a stale snapshot: told
  that B was gone, it deleted B's entries as kube-proxy would, so the flow rightly moved;
- anything else is right: B answering while usable, another usable backend answering once B is
  not (or the flow never had one), and a failure while U is empty (REJECT, or DROP under Local
  policy) or once the Service is gone.

Pure: a function of one answer and what the model says of the Service now.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from harness.model.objects import Backend
from harness.traffic import Outcome

UDP = "UDP"


class FlowFault(StrEnum):
    """How a held UDP flow's answer is wrong (module docstring)."""

    STALE = "stale"
    MOVED = "moved"
    BLACKHOLED = "blackholed"


def flow_fault(
    backend: Backend | None, outcome: Outcome, usable_now: Collection[Backend], excused: bool
) -> FlowFault | None:
    """What is wrong with held flow's `outcome` (None: nothing), for a flow last answered by
    `backend` (None: never answered), `usable_now` the Service's usable backends (empty when it
    is gone), `excused` a step that excuses moves and failures (a relaying proxy restarted, a
    stale snapshot shown); a stale answer is never excused."""
    answered = outcome.backend
    if answered is not None:
        if answered not in usable_now:
            return FlowFault.STALE
        if backend is not None and answered != backend and backend in usable_now and not excused:
            return FlowFault.MOVED
        return None
    if usable_now and not excused:
        return FlowFault.BLACKHOLED
    return None


DESCRIPTIONS: dict[FlowFault, str] = {
    FlowFault.STALE: (
        "UDP flow(s) answered by a backend no longer usable (stale conntrack entry,"
        " kubernetes#19029/#105657)"
    ),
    FlowFault.MOVED: (
        "UDP flow(s) moved off an endpoint still usable (conntrack flushed, kubernetes#122740)"
    ),
    FlowFault.BLACKHOLED: (
        "UDP flow(s) got no answer while the Service had usable endpoints (stale entry to a"
        " removed endpoint, kubernetes#19029/#139628)"
    ),
}
