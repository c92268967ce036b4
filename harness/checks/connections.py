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
  RST on a long-running flow (#74839), a proxy that flushes connection tracking on unrelated
  changes, or on its restart (Cilium's connectivity test "conn-disrupt" holds connections across
  an agent restart and asserts none is dropped). It is allowed once B is not usable (the
  connection may be closed: the harness's own proxies reset it by clearing the flow's entry),
  and after a restart of a proxy whose connections run through its own process
  (`relays_connections`: kube-proxy's userspace mode ended them too), or after the proxy was
  shown a stale snapshot (it was told the endpoint was gone), which the evidence says.

Pure: a function of the answers and what the model says of their backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.checks.verdict import Verdict, failed, passed
from harness.model.objects import Backend
from harness.traffic import Outcome

PROPERTY = "long-lived-connections"


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

    def moved(self) -> bool:
        return self.outcome.backend is not None and self.outcome.backend != self.backend

    def dropped(self, excused: bool) -> bool:
        return self.outcome.error is not None and self.usable and not excused

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
        }


def check_long_lived(answers: Sequence[HeldAnswer], excused: str | None = None) -> Verdict:
    """Judge one step's answers on the held connections (module docstring). `excused` is why
    failures of connections to usable endpoints are excused this step (the proxy relays
    connections in its own process and was restarted; it was shown a stale snapshot), or None.
    A move is never excused."""
    moved = [a for a in answers if a.moved()]
    dropped = [a for a in answers if a.dropped(excused is not None)]
    evidence: dict[str, Any] = {"connections": [a.to_json() for a in answers]}
    if excused is not None:
        evidence["failures_excused"] = excused
    if not moved and not dropped:
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
    return failed(
        PROPERTY,
        "; ".join(parts),
        moved=[a.to_json() for a in moved],
        dropped=[a.to_json() for a in dropped],
        **evidence,
    )
