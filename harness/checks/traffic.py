"""Properties over one batch of traffic: `no-stale-traffic` (I2, I5), `reject-when-empty` (I6:
REJECT without endpoints, DROP with endpoints on other nodes only) and `availability`.

Each takes the backends the model says new connections may reach (`usable`, from
`CategorizeEndpoints`, so the terminating fallback and publishNotReadyAddresses are already
accounted for) and what the batch saw. The runner judges a step on a confirmation sample
(`harness.checks.confidence`), and every verdict states that sample's power: the share of wrong
outcomes it catches and with what probability.
"""

from __future__ import annotations

from collections.abc import Collection

from harness.checks.confidence import confirmation_evidence
from harness.checks.verdict import Verdict, failed, passed
from harness.model.objects import Backend
from harness.traffic import Counted, ErrorKind, TrafficSample

NO_STALE = "no-stale-traffic"
REJECT = "reject-when-empty"
AVAILABILITY = "availability"

OPT_OUT_PART = "opt-out"
"""The named part of `reject-when-empty` that judges opted-out Services (I13)."""

REJECT_WITHIN_MS = 1000.0  # "refused at once": a REJECT answers in well under a second


def check_no_stale(service: str, usable: Collection[Backend], sample: Counted) -> Verdict:
    """No new connection reached a backend outside `usable`: a deleted, killed, relabelled-out,
    unready, evicted or old-incarnation pod (the documented fallbacks are inside `usable`)."""
    stale = {str(b): n for b, n in sample.hits().items() if b not in usable}
    power = confirmation_evidence(sample.total)
    if not stale:
        return passed(NO_STALE, f"{service}: {sample.total} request(s), none stale", **power)
    return failed(
        NO_STALE,
        f"{service}: {sum(stale.values())} of {sample.total} new connections reached"
        f" {', '.join(sorted(stale))}, which must not get traffic (usable:"
        f" {', '.join(sorted(str(b) for b in usable)) or 'none'})",
        service=service,
        stale_hits=stale,
        usable=sorted(str(b) for b in usable),
        **power,
    )


def check_reject(
    service: str,
    usable: Collection[Backend],
    sample: TrafficSample,
    drops: bool = False,
    opted_out: str | None = None,
) -> Verdict:
    """With no usable endpoint, no connection is answered, and how it fails follows kube-proxy
    (`harness.model.endpoints.has_any_endpoints`):

    - the Service has no endpoints at all (`drops` False): every connection is refused at once
      (ECONNREFUSED within `REJECT_WITHIN_MS`: REJECT), never left to time out (kubernetes#17359,
      PR #72534; e2e "should be rejected when no endpoints exist");
    - it has endpoints, none usable from this node (`drops` True: internalTrafficPolicy=Local,
      endpoints only on other nodes): every connection times out (DROP: no answer at all) and
      none reaches an endpoint. A refusal here is a failure: upstream DROPs
      (`internalTrafficFilterTarget = "DROP"`, "has no local endpoints"), and a client can tell
      the two apart, so a proxy that REJECTs deviates from kube-proxy. (Requiring the timeout
      keeps the case judgeable: a dropped connection is the only outcome that both upstream
      proxiers give, and a REJECTing proxy is caught by its first connection.)

    - it is opted out (`opted_out`, the label: `service.kubernetes.io/service-proxy-name` or
      `.../headless`, I13; the model passes `drops` True): no default proxy programs it, so a
      new connection is neither forwarded (no endpoint answers) nor refused by the proxy; the
      node routes the Service range to a sink, so it times out. This is the named part
      `opt-out` of the property (evidence `part`).

    Not applicable while some endpoint is usable. A sample whose client cannot see a REJECT
    (`TrafficSample.refusals_unseen`: the kube target's SCTP) takes a timeout as a possible
    refusal, and the verdict says a refusal was not judged; an answer still fails."""
    if opted_out is not None:
        return _check_opted_out(service, sample, opted_out)
    if usable:
        return passed(REJECT, f"{service}: has usable endpoints; not applicable")
    if drops:
        wrong = [o for o in sample.outcomes if o.error != ErrorKind.TIMEOUT]
        right, instead = "dropped (the client timed out)", "instead of being dropped"
    else:
        wrong = [
            o
            for o in sample.outcomes
            if o.error != ErrorKind.REFUSED or o.latency_ms > REJECT_WITHIN_MS
        ]
        right, instead = "refused at once", "instead of being refused at once"
        if sample.refusals_unseen is not None:  # a timeout may be the REJECT it cannot see
            wrong = [o for o in wrong if o.error != ErrorKind.TIMEOUT]
            right = f"refused or timed out (a refusal is not judged: {sample.refusals_unseen})"
    power = confirmation_evidence(len(sample.outcomes))
    if not wrong:
        return passed(REJECT, f"{service}: {len(sample.outcomes)} connection(s) {right}", **power)
    first = wrong[0]
    seen = first.error.value if first.error else f"an answer from {first.backend}"
    why = (
        "has endpoints, none on this node (internalTrafficPolicy Local: kube-proxy DROPs)"
        if drops
        else "has no endpoints (kube-proxy REJECTs)"
    )
    return failed(
        REJECT,
        f"{service}: {why}, but a connection got {seen} after {first.latency_ms:.0f} ms {instead}",
        service=service,
        expected="drop" if drops else "reject",
        outcomes=[
            {
                "error": o.error.value if o.error else None,
                "backend": str(o.backend),
                "latency_ms": round(o.latency_ms, 1),
            }
            for o in wrong[:5]
        ],
        **power,
    )


def _check_opted_out(service: str, sample: TrafficSample, label: str) -> Verdict:
    """`check_reject`'s part `opt-out`: every new connection timed out (never answered by an
    endpoint, never refused)."""
    wrong = [o for o in sample.outcomes if o.error != ErrorKind.TIMEOUT]
    power = confirmation_evidence(len(sample.outcomes))
    if not wrong:
        return passed(
            REJECT,
            f"{service}: labelled {label}, not programmed: {len(sample.outcomes)} connection(s)"
            " neither forwarded nor refused (timed out at the node's sink)",
            part=OPT_OUT_PART,
            label=label,
            **power,
        )
    first = wrong[0]
    seen = "a refusal" if first.error == ErrorKind.REFUSED else None
    seen = seen or (first.error.value if first.error else f"an answer from {first.backend}")
    return failed(
        REJECT,
        f"{service}: labelled {label}, so no default proxy may program it, but a connection got"
        f" {seen} after {first.latency_ms:.0f} ms (the proxy ignored the opt-out label)",
        service=service,
        part=OPT_OUT_PART,
        label=label,
        expected="not programmed (timeout)",
        outcomes=[
            {
                "error": o.error.value if o.error else None,
                "backend": str(o.backend),
                "latency_ms": round(o.latency_ms, 1),
            }
            for o in wrong[:5]
        ],
        **power,
    )


def check_availability(service: str, usable: Collection[Backend], sample: Counted) -> Verdict:
    """While a usable endpoint exists, no request fails."""
    errors = sample.errors()
    power = confirmation_evidence(sample.total)
    if not usable or not errors:
        return passed(AVAILABILITY, f"{service}: no failed request", **power)
    return failed(
        AVAILABILITY,
        f"{service}: {sum(errors.values())} of {sample.total} request(s) failed"
        f" ({', '.join(f'{k.value}: {v}' for k, v in sorted(errors.items()))})"
        f" while {len(usable)} endpoint(s) were usable",
        service=service,
        errors={k.value: v for k, v in errors.items()},
        usable=sorted(str(b) for b in usable),
        **power,
    )
