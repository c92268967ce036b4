"""`long-lived-connections` (issue 12 items 4 and 5): established connections survive changes
that do not concern their endpoint, and are never silently moved to another backend.

The harness holds a few kept-alive connections open across steps (`harness.longlived`) and asks
once on each after every step. What each answer must be, for a connection opened to backend B:

- an answer from B is always right: a connection keeps its backend. That holds also once B's
  endpoint is no longer usable: kube-proxy deletes only UDP conntrack entries of removed
  endpoints (`pkg/proxy/conntrack/cleanup.go`), and a terminating pod keeps serving its
  established connections through its grace period, by design (KEP-1669);
- an answer from another backend is always wrong: the connection moved silently. A TCP
  connection cannot move to a pod that never saw its handshake; a proxy that rebalances
  mid-stream, or a NAT that re-translates an established flow whose entry it lost, gives a
  client answers from a pod it never connected to (kubernetes#74839: conntrack INVALID packets
  must be dropped, not re-translated or reset; e2e "should drop INVALID conntrack entries");
- a failure (reset, timeout, refused) is wrong while B is still usable for the Service: a spurious
  RST on a long-running flow (#74839: the named part `out-of-window`, after an `OutOfWindow`
  event in which B's pod sent each of its connections a segment far outside the window, as the
  e2e test "should drop INVALID conntrack entries" does; conntrack marks it INVALID, and a
  proxy that does not drop it lets it reach the client untranslated, which answers RST and so
  resets the connection), a proxy that flushes connection tracking on unrelated
  changes, or on its restart (Cilium's connectivity test "conn-disrupt" holds connections across
  an agent restart and asserts none is dropped). It is allowed once B is not usable (the
  connection may be closed: the harness's own proxies reset it by clearing the flow's entry),
  and after a restart of a proxy whose connections run through its own process
  (`relays_connections`: kube-proxy's userspace mode ended them too), or after the proxy was
  shown a stale snapshot (it was told the endpoint was gone), which the evidence says.

Held UDP flows (`protocol` UDP) are judged by their own rules, `harness.checks.udp_flows`: a
flow must follow its endpoint's removal (kube-proxy deletes its conntrack entry) rather than
keep it, and is never blackholed while a usable endpoint exists.

Pure: a function of the answers and what the model says of their backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.checks.udp_flows import DESCRIPTIONS, UDP, FlowFault, flow_fault
from harness.checks.verdict import Verdict, failed, passed
from harness.model.objects import Backend
from harness.traffic import Outcome

PROPERTY = "long-lived-connections"
OUT_OF_WINDOW = "out-of-window"
PARTS = {
    OUT_OF_WINDOW: (
        "after a backend sent an out-of-window segment (conntrack INVALID: it must be dropped,"
        " kubernetes#74839)"
    ),
}
"""Named parts of the property, by the event that tests them, and what a failure's message says
of each."""


@dataclass(frozen=True)
class HeldAnswer:
    """One held connection's answer after a step: the Service and client it was opened from,
    the backend it was opened to (`backend`), this step's outcome, whether the model still
    counts that backend usable for the Service (`usable`), and the step it was opened at."""

    service: str
    client: str
    backend: Backend
    outcome: Outcome
    usable: bool
    opened_step: int
    protocol: str = "TCP"
    usable_now: frozenset[Backend] = frozenset()
    """The Service's usable backends now (UDP flows only: where the next datagram may go)."""

    def moved(self) -> bool:
        if self.protocol == UDP:
            return False
        return self.outcome.backend is not None and self.outcome.backend != self.backend

    def dropped(self, excused: bool) -> bool:
        if self.protocol == UDP:
            return False
        return self.outcome.error is not None and self.usable and not excused

    def flow_fault(self, excused: bool) -> FlowFault | None:
        """What is wrong with a UDP flow's answer (`harness.checks.udp_flows`); None for TCP."""
        if self.protocol != UDP:
            return None
        last = self.backend if self.backend.pod else None
        return flow_fault(last, self.outcome, self.usable_now, excused)

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "client": self.client,
            "opened_at_step": self.opened_step,
            "backend": str(self.backend),
            "answered_by": None if self.outcome.backend is None else str(self.outcome.backend),
            "error": None if self.outcome.error is None else self.outcome.error.value,
            "latency_ms": round(self.outcome.latency_ms, 1),
            "backend_still_usable": self.usable,
            **({"protocol": UDP} if self.protocol == UDP else {}),
        }


def check_long_lived(
    answers: Sequence[HeldAnswer], excused: str | None = None, part: str | None = None
) -> Verdict:
    """Judge one step's answers on the held connections (module docstring). `excused` is why
    failures of connections to usable endpoints are excused this step (the proxy relays
    connections in its own process and was restarted; it was shown a stale snapshot), or None.
    A move is never excused. `part` names the part of the property the step's event tests
    (`OUT_OF_WINDOW`), which the evidence and a failure's message say."""
    moved = [a for a in answers if a.moved()]
    dropped = [a for a in answers if a.dropped(excused is not None)]
    faults = [(a, a.flow_fault(excused is not None)) for a in answers]
    flows = [(a, fault) for a, fault in faults if fault is not None]
    evidence: dict[str, Any] = {"connections": [a.to_json() for a in answers]}
    if part is not None:
        evidence["part"] = part
    if excused is not None:
        evidence["failures_excused"] = excused
    if not moved and not dropped and not flows:
        kept = sum(1 for a in answers if a.outcome.backend is not None)
        return passed(
            PROPERTY,
            f"{len(answers)} long-lived connection(s): {kept} kept their backend,"
            f" {len(answers) - kept} closed with their endpoint",
            **evidence,
        )
    parts = []
    if moved:
        first = moved[0]
        parts.append(
            f"{len(moved)} connection(s) moved silently: one to {first.service} opened to"
            f" {first.backend} (step {first.opened_step}) was answered by"
            f" {first.outcome.backend}"
        )
    if dropped:
        first = dropped[0]
        assert first.outcome.error is not None
        parts.append(
            f"{len(dropped)} connection(s) to endpoints still usable were dropped: one to"
            f" {first.service} opened to {first.backend} (step {first.opened_step}) got"
            f" {first.outcome.error.value}"
        )
    parts += _flow_parts(flows)
    prefix = f"{PARTS[part]}: " if part is not None else ""
    return failed(
        PROPERTY,
        prefix + "; ".join(parts),
        moved=[a.to_json() for a in moved],
        dropped=[a.to_json() for a in dropped],
        **({"udp_flows": [{"fault": f.value, **a.to_json()} for a, f in flows]} if flows else {}),
        **evidence,
    )


def _flow_parts(flows: Sequence[tuple[HeldAnswer, FlowFault]]) -> list[str]:
    """One message part per kind of UDP flow fault, naming its first flow."""
    parts = []
    for fault in FlowFault:
        found = [a for a, f in flows if f == fault]
        if found:
            first = found[0]
            got = first.outcome.backend or (first.outcome.error and first.outcome.error.value)
            parts.append(
                f"{len(found)} {DESCRIPTIONS[fault]}: one to {first.service} last answered by"
                f" {first.backend if first.backend.pod else 'nobody'} (opened at step"
                f" {first.opened_step}) got {got}"
            )
    return parts
