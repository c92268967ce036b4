"""Known upstream issues: a failed property whose counterexample matches one gets its history.

A match annotates a failure ("matches kubernetes#109414 (evicted pod listed), fixed in v1.25.0");
it never changes a verdict: the property stays failed. Signatures are conservative: each looks
at the failed property, the shrunk counterexample's events (replayed on the model's state to know
each pod's phase and readiness) and the failing verdict's structured evidence, and matches only
the exact symptom the issue describes. Pure: nothing here touches a target.

Every entry of `../shared/reference/anchors.md` §4 is in the table (`ANCHORED`, tested), but
only symptoms the harness can tell apart are matched automatically: terminal pods kept as
endpoints (4), Services without endpoints blackholing and the reverse, spurious REJECTs (6),
plus the EndpointSlice controller's phase-blind change detection (issue 15). The others are
listed with `signature` None and `shown_by` saying what would show them. The UDP conntrack
issues (1-3) are matched on `long-lived-connections`' held UDP flows (`harness.checks.udp_flows`):
a flow stale or blackholed on an endpoint that was deleted (#19029), stale on one that is only
unready (#105657), moved off a usable endpoint at a proxy restart (#122740). Spurious RSTs (10,
#74839) are matched on held connections reset right after an `OutOfWindow` event (the named part
`out-of-window` of `long-lived-connections`); terminating-pod traffic (5), session affinity (7),
lag at scale
(8) and random-mode unfairness (9) show as failures of existing properties, but by symptoms
that have other causes too, so a failure is not claimed to be one of them. Listed, a person
reading a failure can still find them (`harness known-issues`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.events import Event, EvictPod, OutOfWindow, RestartProxy
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
    is True only for the exact symptom (it must not raise on any input); None: listed for
    people, never matched, and `shown_by` says which property or future check would show it.
    `unfixed` words a missing `fixed_in` ("not fixed upstream", or e.g. "closed without a
    linked fix")."""

    id: str
    title: str
    properties: frozenset[str]
    affected: str
    fixed_in: str | None
    link: str
    signature: Signature | None
    component: str = "server"
    note: str = ""
    shown_by: str = ""
    unfixed: str = "not fixed upstream"


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


def rejected_with_endpoints(prop: str, events: Sequence[Event], verdicts: Verdicts) -> bool:
    """kubernetes#93682: connections to a Service whose endpoints are usable are refused, as
    if it had none: every failed request is a refusal (`availability`), or the rules REJECT
    although endpoints are usable (`exact-balance`)."""
    del events
    for verdict in verdicts:
        message, evidence = verdict.get("message"), verdict.get("evidence")
        if prop == "exact-balance" and isinstance(message, str):
            return "REJECTs although" in message
        if prop == "availability" and isinstance(evidence, Mapping) and evidence.get("usable"):
            errors = evidence.get("errors")
            return isinstance(errors, Mapping) and bool(errors) and set(errors) == {"refused"}
    return False


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


def _udp_faults(prop: str, verdicts: Verdicts) -> list[Mapping[str, Any]]:
    """The held UDP flows a failing `long-lived-connections` verdict names as wrong, each with
    its `fault` (stale, moved, blackholed) and `backend` (`"pod/uid"`, `"/"` never answered)."""
    if prop != "long-lived-connections":
        return []
    found = []
    for verdict in verdicts:
        evidence = verdict.get("evidence")
        flows = evidence.get("udp_flows") if isinstance(evidence, Mapping) else None
        if isinstance(flows, list):
            found += [f for f in flows if isinstance(f, Mapping)]
    return found


def _final_state(events: Sequence[Event]) -> ClusterState | None:
    """The model state at the end of `events`; None when they do not replay on the model."""
    state = ClusterState()
    try:
        for event in events:
            state = event.apply(state)
    except Exception:  # a counterexample the model rejects matches nothing
        return None
    return state


def _final_pods(events: Sequence[Event]) -> dict[str, bool] | None:
    """`"pod/uid"` of every pod incarnation at the end of `events`, mapped to whether it is
    ready; None when the events do not replay on the model."""
    state = _final_state(events)
    if state is None:
        return None
    return {f"{p.name}/{p.uid}": p.ready and not p.phase.terminal for p in state.pods.values()}


def udp_entry_of_removed_endpoint(prop: str, events: Sequence[Event], verdicts: Verdicts) -> bool:
    """kubernetes#19029: a held UDP flow still reaches, or is blackholed on, the endpoint it
    had, and that endpoint's pod is gone, or its Service is (PR #141371): its conntrack entry
    was not deleted."""
    state, pods = _final_state(events), _final_pods(events)
    return (
        state is not None
        and pods is not None
        and any(
            f.get("fault") in ("stale", "blackholed")
            and f.get("backend") not in (None, "/")
            and (f.get("backend") not in pods or f.get("service") not in state.services)
            for f in _udp_faults(prop, verdicts)
        )
    )


def udp_entry_of_node_port(prop: str, events: Sequence[Event], verdicts: Verdicts) -> bool:
    """kubernetes#59368: a held UDP flow from outside to a node port (`harness.longlived`) still
    reaches, or is blackholed on, the endpoint it had once that endpoint is no longer usable
    there: its entry, whose original destination is a node's address, was not deleted (a
    cleanup by ClusterIP only)."""
    return any(
        f.get("fault") in ("stale", "blackholed")
        and f.get("backend") not in (None, "/")
        and "node port" in str(f.get("client", ""))
        for f in _udp_faults(prop, verdicts)
    )


def udp_entry_of_unready_endpoint(prop: str, events: Sequence[Event], verdicts: Verdicts) -> bool:
    """kubernetes#105657: a held UDP flow still reaches its endpoint, whose pod runs but is not
    ready: the conntrack cleanup ignored readiness."""
    pods = _final_pods(events)
    return pods is not None and any(
        f.get("fault") == "stale" and pods.get(str(f.get("backend"))) is False
        for f in _udp_faults(prop, verdicts)
    )


def udp_flows_flushed_on_restart(prop: str, events: Sequence[Event], verdicts: Verdicts) -> bool:
    """kubernetes#122740: held UDP flows moved off endpoints still usable, and the last event
    restarted the proxy: its restart flushed their conntrack entries."""
    restarted = bool(events) and isinstance(events[-1], RestartProxy)
    return restarted and any(f.get("fault") == "moved" for f in _udp_faults(prop, verdicts))


def reset_after_out_of_window(prop: str, events: Sequence[Event], verdicts: Verdicts) -> bool:
    """kubernetes#74839: the last event had a backend send out-of-window segments
    (`OutOfWindow`), and `long-lived-connections`' part `out-of-window` failed with held
    connections to endpoints still usable reset: the proxy let the INVALID segment through."""
    if prop != "long-lived-connections" or not events or not isinstance(events[-1], OutOfWindow):
        return False
    for verdict in verdicts:
        evidence = verdict.get("evidence")
        if not isinstance(evidence, Mapping) or evidence.get("part") != "out-of-window":
            continue
        dropped = evidence.get("dropped")
        rows = dropped if isinstance(dropped, list) else []
        if any(isinstance(d, Mapping) and d.get("error") == "reset" for d in rows):
            return True
    return False


def _proxy_issue(
    issue_id: str,
    title: str,
    properties: Sequence[str],
    affected: str,
    note: str,
    shown_by: str = "",
    signature: Signature | None = None,
) -> KnownIssue:
    """A kube-proxy issue of kubernetes/kubernetes without a fixed-in version of its own."""
    return KnownIssue(
        id=issue_id,
        title=title,
        properties=frozenset(properties),
        affected=affected,
        fixed_in=None,
        link=f"https://github.com/kubernetes/kubernetes/issues/{issue_id.split('#')[1]}",
        signature=signature,
        component="proxy",
        unfixed="fixed releases: see the issue",
        note=note,
        shown_by=shown_by,
    )


_HELD_FLOWS = ("long-lived-connections",)
UDP_CONNTRACK_ISSUES: tuple[KnownIssue, ...] = (
    _proxy_issue(
        "kubernetes#19029",
        "stale UDP conntrack entries after an endpoint is removed",
        _HELD_FLOWS,
        "see the issue; also #48370 (0 to n endpoints), #59368 (NodePort, PR #71573)",
        "a recent regression: #139628 (scale to zero; fix PR #139629, PR #141371)",
        signature=udp_entry_of_removed_endpoint,
    ),
    _proxy_issue(
        "kubernetes#59368",
        "stale UDP conntrack entries of a NodePort after an endpoint is removed (cleared by"
        " ClusterIP only)",
        _HELD_FLOWS,
        "see the issue; fixed by PR #71573 (ClearEntriesForPortNAT); entries made before the"
        " rules were in: #91236, PR #98305",
        "matched on held flows from outside to a node port; the harness's mutant"
        " mutant-iptables-keeps-nodeport-udp-conntrack shows it",
        signature=udp_entry_of_node_port,
    ),
    _proxy_issue(
        "kubernetes#105657",
        "UDP blackhole after an endpoint turns ready: the flush ignored readiness",
        _HELD_FLOWS,
        "see the issue (it has an e2e regression test)",
        "",
        signature=udp_entry_of_unready_endpoint,
    ),
    _proxy_issue(
        "kubernetes#122740",
        "UDP flows flushed when kube-proxy restarts",
        _HELD_FLOWS,
        "see the issue; the conntrack reconciler: #126130",
        "",
        signature=udp_flows_flushed_on_restart,
    ),
)
"""The UDP conntrack issues of anchors §4 (1-3), matched on `long-lived-connections`' UDP flows."""


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
    KnownIssue(
        id="kubernetes#93682",
        title="Service with endpoints REJECTed as if it had none",
        properties=frozenset({"availability", "exact-balance"}),
        affected="reported on v1.19.0-rc.3 (kube-proxy wrote 'has no endpoints' REJECTs)",
        fixed_in=None,
        link="https://github.com/kubernetes/kubernetes/issues/93682",
        signature=rejected_with_endpoints,
        component="proxy",
        unfixed="closed without a linked fix",
        note="the reverse of kubernetes#17359; a proxy that cannot read EndpointSlices shows it",
    ),
    *UDP_CONNTRACK_ISSUES,
    *(
        _proxy_issue(issue_id, title, properties, affected, note, shown_by)
        for issue_id, title, properties, affected, note, shown_by in (
            (
                "kubernetes#86280",
                "traffic to terminating pods, errors during rolling updates",
                ("no-stale-traffic", "availability"),
                "see the issue; also #128479, PR #97238 (KEP-1669), #57841 (IPVS)",
                "",
                "no-stale-traffic or availability at a terminating endpoint; not matched"
                " automatically, the same symptom has other causes",
            ),
            (
                "kubernetes#35677",
                "session affinity bugs (timeout, IPVS, externalTrafficPolicy Local)",
                ("affinity",),
                "see the issue; also #52626, #55429, #71809, #89358, kube-router#910",
                "",
                "affinity; not matched automatically, the same symptom has other causes",
            ),
            (
                "kubernetes#48107",
                "endpoint and programming lag at scale",
                ("programming-latency",),
                "see the issue; also #73382, #98570, #139513, #82378 (metric skew)",
                "",
                "programming-latency; a deadline missed has many causes",
            ),
            (
                "kubernetes#37932",
                "perceived unfairness of iptables random mode and keep-alive",
                ("fairness",),
                "see the issue; also #64580, #38456, #5292, PR #83599 (probability precision)",
                "",
                "fairness (fresh connections) tells a real bias from keep-alive pinning",
            ),
        )
    ),
    KnownIssue(
        id="kubernetes#74839",
        title="spurious RST on long-running TCP through a VIP (INVALID conntrack packets)",
        properties=frozenset({"long-lived-connections"}),
        affected="before v1.14.0 (no DROP of conntrack INVALID packets); since v1.29 (PR"
        " #120412, #117924) the DROP is left out on nodes that set nf_conntrack_tcp_be_liberal,"
        " where conntrack does not mark such segments INVALID",
        fixed_in="v1.14.0",
        link="https://github.com/kubernetes/kubernetes/issues/74839",
        signature=reset_after_out_of_window,
        component="proxy",
        note="fixed by PR #74840 (KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP; nftables:"
        " ct state invalid drop, PR #122663); e2e 'should drop INVALID conntrack entries'",
    ),
)

ANCHORED = (
    "kubernetes#19029",
    "kubernetes#105657",
    "kubernetes#122740",
    "kubernetes#109414",
    "kubernetes#86280",
    "kubernetes#17359",
    "kubernetes#93682",
    "kubernetes#35677",
    "kubernetes#48107",
    "kubernetes#37932",
    "kubernetes#74839",
)
"""The lead issue of each entry of anchors §4 (1-10; 6 has two, the bug and its reverse)."""


# -- matching and wording -------------------------------------------------------------------------
def listing(table: Sequence[KnownIssue]) -> list[str]:
    """The table for a person (`harness known-issues`): per issue, its title and link, then
    whether and how a failure is matched to it. Pure."""
    lines = []
    for issue in table:
        fixed = f"fixed in {issue.fixed_in}" if issue.fixed_in else issue.unfixed
        if issue.signature is not None:
            how = f"matched on {', '.join(sorted(issue.properties))}; {issue.affected}; {fixed}"
        else:
            how = f"not matched automatically: {issue.shown_by}; {issue.affected}"
        lines += [f"{issue.id}  {issue.title}", f"    {how}", f"    {issue.link}"]
    return lines


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
        return f"{head}, {issue.unfixed}"
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
        signature = issue.signature
        if prop in issue.properties and signature and signature(prop, events, list(verdicts or [])):
            version = (versions or {}).get(issue.component)
            found.append(Match(issue, wording(issue, version)))
    return found
