"""Known upstream issues: a failed property whose counterexample matches one gets its history.

A match annotates a failure ("matches kubernetes#109414 (evicted pod listed), fixed in v1.25.0");
it never changes a verdict: the property stays failed. Signatures are conservative: each looks
at the failed property, the shrunk counterexample's events (replayed on the model's state to know
each pod's phase and readiness) and the failing verdict's structured evidence, and matches only
the exact symptom the issue describes. Pure: nothing here touches a target.

Of `../shared/reference/anchors.md` §4, the entries the harness's properties can show are here:
terminal pods kept as endpoints (4), Services without endpoints blackholing (6), plus the
EndpointSlice controller's phase-blind change detection (issue 15). The UDP conntrack entries
(1-3, 10) need UDP flows and conntrack state, which no property checks yet; terminating-pod
traffic (5), session affinity (7), lag at scale (8) and random-mode unfairness (9) have no
signature that could not also match a different cause, so they are left out rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.events import Event, EvictPod
from harness.model.state import ClusterState

Verdicts = Sequence[Mapping[str, Any]]
Signature = Callable[[str, Sequence[Event], Verdicts], bool]


@dataclass(frozen=True)
class KnownIssue:
    """One upstream issue or documented upstream behaviour, and how a failure shows it.

    `component` names the version the fix is judged by (a key of a target's `versions()`:
    "server" for the control plane, "proxy" for the proxy); `fixed_in` is the first release
    with the fix (None: not fixed, or behaviour by design);
    `affected` says in words which versions show it; `signature(property, events, verdicts)`
    is True only for the exact symptom (it must not raise on any input)."""

    id: str
    title: str
    properties: frozenset[str]
    affected: str
    fixed_in: str | None
    link: str
    signature: Signature
    component: str = "server"
    note: str = ""


@dataclass(frozen=True)
class Match:
    """A known issue a failure matches, worded for the target's version (or without it)."""

    issue: KnownIssue
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.issue.id,
            "title": self.issue.title,
            "affected": self.issue.affected,
            "fixed_in": self.issue.fixed_in,
            "link": self.issue.link,
            "text": self.text,
        }


# -- reading a counterexample ---------------------------------------------------------------------
def evicted_incarnations(events: Sequence[Event]) -> dict[str, bool]:
    """`"pod/uid"` of every pod incarnation still Failed (evicted) at the end of `events`,
    mapped to whether it was ready when evicted. Empty when the events do not replay on the
    model (a match is then never claimed)."""
    state = ClusterState()
    ready_at_eviction: dict[str, bool] = {}
    try:
        for event in events:
            if isinstance(event, EvictPod):
                pod = state.pod(event.pod)
                ready_at_eviction[f"{pod.name}/{pod.uid}"] = pod.ready and not pod.phase.terminal
            state = event.apply(state)
    except Exception:  # a counterexample the model rejects matches nothing
        return {}
    still = {f"{p.name}/{p.uid}" for p in state.pods.values() if p.phase.terminal}
    return {ref: ready for ref, ready in ready_at_eviction.items() if ref in still}


def listed_endpoints(prop: str, verdict: Mapping[str, Any]) -> dict[str, str]:
    """Endpoints a failing verdict says were listed although they must not be: `"pod/uid"` to
    their condition flags. Reads `endpoints`' `unexpected` rows and the same rows quoted in a
    `programming-latency` verdict's `still_wrong`; any other property lists none."""
    evidence = verdict.get("evidence")
    if not isinstance(evidence, Mapping):
        return {}
    if prop == "endpoints":
        rows = evidence.get("unexpected")
        rows = [r for r in rows if isinstance(r, str)] if isinstance(rows, list) else []
    elif prop == "programming-latency":
        wrong = evidence.get("still_wrong")
        found = re.search(r"unexpected ([^;()]*(?:\([^)]*\)[^;()]*)*)", wrong or "")
        rows = found.group(1).split(", ") if isinstance(wrong, str) and found else []
    else:
        return {}
    listed = {}
    for row in rows:
        if shown := re.fullmatch(r"([^/\[]+/[^\[]+)\[([a-z,]*)\]\(.*\)", row.strip()):
            listed[shown.group(1)] = shown.group(2)
    return listed


def _evicted_listed(verdicts: Verdicts, prop: str, events: Sequence[Event]) -> dict[str, bool]:
    """Evicted incarnations (ready at eviction or not) that a failing verdict shows listed."""
    evicted = evicted_incarnations(events)
    shown = {ref for v in verdicts for ref in listed_endpoints(prop, v)}
    return {ref: ready for ref, ready in evicted.items() if ref in shown}


# -- signatures -----------------------------------------------------------------------------------
def terminal_pod_listed(prop: str, events: Sequence[Event], verdicts: Verdicts) -> bool:
    """kubernetes#109414: an evicted (Failed) pod is still listed as an endpoint."""
    return bool(_evicted_listed(verdicts, prop, events))


def unready_then_evicted_listed(prop: str, events: Sequence[Event], verdicts: Verdicts) -> bool:
    """The phase-blind change detection: a pod unready *before* its eviction is still listed,
    and listed not ready (evicting a ready pod changes its readiness, which the controller
    does notice)."""
    flags = {ref: f for v in verdicts for ref, f in listed_endpoints(prop, v).items()}
    return any(
        not ready and "ready" not in flags[ref].split(",")
        for ref, ready in _evicted_listed(verdicts, prop, events).items()
    )


def blackholed_when_empty(prop: str, events: Sequence[Event], verdicts: Verdicts) -> bool:
    """kubernetes#17359: a Service without endpoints lets connections time out (a blackhole)
    instead of refusing them: every wrong outcome shown is a timeout without an answer."""
    del events
    for verdict in verdicts:
        evidence = verdict.get("evidence")
        outcomes = evidence.get("outcomes") if isinstance(evidence, Mapping) else None
        if isinstance(outcomes, list) and outcomes:
            return all(isinstance(o, Mapping) and o.get("error") == "timeout" for o in outcomes)
    return False


KNOWN_ISSUES: tuple[KnownIssue, ...] = (
    KnownIssue(
        id="kubernetes#109414",
        title="evicted pod listed",
        properties=frozenset({"endpoints", "programming-latency"}),
        affected="before v1.25.0 (terminal pods kept in Endpoints and EndpointSlices)",
        fixed_in="v1.25.0",
        link="https://github.com/kubernetes/kubernetes/issues/109414",
        signature=terminal_pod_listed,
        note="fixed by PR #110255; cherry-picked to release-1.22, 1.23 and 1.24"
        " (PRs #110260, #110259, #110258); also kubernetes#109718",
    ),
    KnownIssue(
        id="upstream behaviour, no issue filed",
        title="unready pod evicted stays listed: podEndpointsChanged ignores the phase",
        properties=frozenset({"endpoints", "programming-latency"}),
        affected="every version with the #109414 fix (seen on v1.24; the function is unchanged)",
        fixed_in=None,
        link="https://github.com/kubernetes/kubernetes/blob/master/pkg/controller/util/endpoint/"
        "controller_utils.go (podEndpointsChanged)",
        signature=unready_then_evicted_listed,
        note="the endpoint stays, not ready, until something else touches the Service",
    ),
    KnownIssue(
        id="kubernetes#17359",
        title="Service without endpoints blackholes instead of rejecting",
        properties=frozenset({"reject-when-empty"}),
        affected="before v1.14.0 (a regression of the original fix, PR #19576)",
        fixed_in="v1.14.0",
        link="https://github.com/kubernetes/kubernetes/issues/17359",
        signature=blackholed_when_empty,
        component="proxy",
        note="fixed again by PR #72534",
    ),
)


# -- matching and wording -------------------------------------------------------------------------
def version_tuple(version: str | None) -> tuple[int, int, int] | None:
    """`v1.24.3`, `1.30.0-gke.1`, `Kubernetes v1.30.2` -> (1, 24, 3); None if none is found."""
    found = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", version or "")
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2)), int(found.group(3) or 0)


def wording(issue: KnownIssue, version: str | None) -> str:
    """ "matches ID (title), fixed in V", or "...; this version (X) should have the fix" when the
    target's version is known and at or after the fix."""
    head = f"matches {issue.id} ({issue.title})"
    if issue.fixed_in is None:
        return f"{head}, not fixed upstream"
    have, fixed = version_tuple(version), version_tuple(issue.fixed_in)
    if have is not None and fixed is not None and have >= fixed:
        return f"{head}, fixed in {issue.fixed_in}; this version ({version}) should have the fix"
    return f"{head}, fixed in {issue.fixed_in}"


def match(
    prop: str,
    events: Sequence[Event],
    verdicts: Verdicts | None,
    versions: Mapping[str, str] | None = None,
    table: Sequence[KnownIssue] = KNOWN_ISSUES,
) -> list[Match]:
    """Every known issue whose signature the failure of `prop` matches, worded for the version
    of the issue's component in `versions` (a target's `versions()`; absent: unknown). Never
    raises for odd evidence."""
    found = []
    for issue in table:
        if prop in issue.properties and issue.signature(prop, events, list(verdicts or [])):
            version = (versions or {}).get(issue.component)
            found.append(Match(issue, wording(issue, version)))
    return found
