"""Churn figures: every request of a load run under churn classified by cause, per phase.

The churn benchmark (bench/test_churn.py) sends fresh connections at a steady rate through one
Service's VIP while it changes the cluster (a rolling update, scaling, relabelling, restarting
the proxy). It records each request (`Request`: when it started and ended, the pod that answered
or how it failed) and each model state the target was in (`Span`: the churn action that made
it, when its change began to be applied and when the proxy had synced it, and the backends a new
connection to the Service may reach in it: `harness.model.endpoints.expect`).

A failed request's cause is its error (`refused`, `reset`, `timeout`, `other`) or, for an
answer, `wrong_pod`: answered by a pod incarnation usable in none of the states the target was
in while the request ran. State i counts from when its change began to be applied until the
change after it was synced (the data plane may serve either meanwhile). The promise is zero
failed requests while usable endpoints exist: a failure counts against it unless some state
overlapping the request had no usable endpoint (then refusing is what the Service must do).

Pure: records in, JSON-ready figures out (`churn_figures`); no clock, no traffic.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

CAUSES = ("refused", "reset", "timeout", "wrong_pod", "other")
"""Every cause of a failed request, in the order tables show them."""
LISTED_FAILURES = 20
"""How many failures that broke the promise a figure file lists one by one (the counts are
complete)."""


@dataclass(frozen=True)
class Request:
    """One request of the load: monotonic start and end (s), and the answering pod incarnation
    (`pod`, `uid`) or the error (an `harness.traffic.ErrorKind` value)."""

    started_s: float
    ended_s: float
    pod: str | None = None
    uid: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Span:
    """One model state the target was in: the churn `phase` that made it, when its change began
    to be applied (`since_s`) and when `apply` returned (`settled_s`, the proxy synced), and
    the (pod, uid) pairs a new connection to the Service may reach in it."""

    phase: str
    since_s: float
    settled_s: float
    usable: frozenset[tuple[str, str]]


def overlapping(spans: Sequence[Span], request: Request) -> list[Span]:
    """The states the target may have served `request` in (see the module docstring); `spans`
    in the order they were applied. A request before the first state sees the first."""
    found = []
    for index, span in enumerate(spans):
        until = spans[index + 1].settled_s if index + 1 < len(spans) else float("inf")
        if span.since_s <= request.ended_s and until >= request.started_s:
            found.append(span)
    return found or list(spans[:1])


def cause_of(request: Request, spans: Sequence[Span]) -> str | None:
    """Why `request` failed (one of `CAUSES`), or None when it was answered by a pod usable in
    a state it overlapped."""
    if request.error is not None:
        return request.error if request.error in CAUSES else "other"
    backend = (request.pod or "?", request.uid or "?")
    if any(backend in span.usable for span in overlapping(spans, request)):
        return None
    return "wrong_pod"


def excused(request: Request, spans: Sequence[Span]) -> bool:
    """Whether a failure of `request` is outside the promise: a state it overlapped had no
    usable endpoint."""
    return any(not span.usable for span in overlapping(spans, request))


def phase_of(request: Request, spans: Sequence[Span]) -> str:
    """The churn phase running when `request` started: the last state begun by then."""
    starts = [span.since_s for span in spans]
    index = bisect.bisect_right(starts, request.started_s) - 1
    return spans[max(index, 0)].phase


def rate_over_time(requests: Sequence[Request], began_s: float, bin_s: float) -> list[list[float]]:
    """[[seconds since `began_s`, requests started per second in that bin], ...], one per whole
    `bin_s` from the first to the last bin a request started in: the load's last bin, cut short
    when it stopped, is left out unless it is the only one (it would show a drop that is only
    the end of the run)."""
    if not requests or bin_s <= 0:
        return []
    counts = Counter(int((r.started_s - began_s) // bin_s) for r in requests)
    last = max(counts)
    whole = last if last > 0 else 1
    return [[round(i * bin_s, 3), round(counts.get(i, 0) / bin_s, 1)] for i in range(whole)]


def _by_cause(counts: Counter[str]) -> list[tuple[str, int]]:
    return [(cause, counts[cause]) for cause in CAUSES]


def churn_figures(
    requests: Sequence[Request], spans: Sequence[Span], began_s: float, bin_s: float = 1.0
) -> dict[str, object]:
    """One implementation's figures: requests, requests/s (whole run and over time), failures
    per cause in all and per phase, whether the promise was kept and the failures that broke
    it (the first `LISTED_FAILURES`, each with its cause, phase, time and answering pod).
    ValueError without any state: a load is judged against the states it ran in."""
    if not spans:
        raise ValueError("churn figures need at least one state of the target")
    totals: Counter[str] = Counter()
    per_phase: dict[str, Counter[str]] = {span.phase: Counter() for span in spans}
    sent: Counter[str] = Counter()
    breaking: list[dict[str, object]] = []
    broken = excusable = 0
    for request in requests:
        phase = phase_of(request, spans)
        sent[phase] += 1
        cause = cause_of(request, spans)
        if cause is None:
            continue
        totals[cause] += 1
        per_phase[phase][cause] += 1
        if excused(request, spans):
            excusable += 1
            continue
        broken += 1
        if len(breaking) < LISTED_FAILURES:
            at_s = round(request.started_s - began_s, 3)
            breaking.append({"cause": cause, "phase": phase, "at_s": at_s, "pod": request.pod})
    seconds = max((r.ended_s for r in requests), default=began_s) - began_s
    return {
        "requests": len(requests),
        "answered": len(requests) - sum(totals.values()),
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(requests) / seconds, 1) if seconds > 0 else None,
        "rate_over_time": rate_over_time(requests, began_s, bin_s),
        "failures": dict(_by_cause(totals)),
        "phases": [
            {"phase": phase, "requests": sent[phase], "failures": dict(_by_cause(counts))}
            for phase, counts in per_phase.items()
        ],
        "failures_without_usable_endpoints": excusable,
        "promise_kept": broken == 0,
        "breaking_failures": broken,
        "breaking": breaking,
    }
