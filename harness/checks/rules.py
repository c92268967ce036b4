"""Property `exact-balance`: the programmed rules send new connections exactly where the model
says, each with probability exactly 1/n (kernel rounding aside), or REJECT (no endpoints at all),
or DROP (endpoints, none usable from this node: `harness.model.endpoints.has_any_endpoints`).

Read from the data plane's own state (`RuleOracle.reachability`), as kube-proxy's unit tests
trace packets through generated rules (pkg/proxy/iptables/proxier_test.go `tracePacket`). It is
deterministic and needs no traffic, so it lets Hypothesis run many more examples; the traffic
properties still test the kernel path end to end.
"""

from __future__ import annotations

from collections.abc import Collection

from harness.checks.verdict import Verdict, failed, passed
from harness.model.objects import Backend
from harness.traffic import Reachability

PROPERTY = "exact-balance"
TOLERANCE = 1e-6  # iptables' statistic match has 1/2^31 granularity; 10-decimal probabilities


def reachability_mismatch(
    usable: Collection[Backend],
    reach: Reachability,
    drops: bool = False,
    opted_out: str | None = None,
) -> str | None:
    """Why `reach` differs from the model's `usable` backends, or None if it matches. With
    nothing usable every new connection must be dropped (`drops`: kube-proxy's "has no local
    endpoints" DROP) or else rejected, and none reach an endpoint. An opted-out Service
    (`opted_out`, its label) must not be programmed: no new connection is translated to an
    endpoint or rejected (an untranslated packet goes on to the node's sink)."""
    if opted_out is not None:
        return _opted_out_mismatch(reach, opted_out)
    if not usable:
        return _empty_mismatch(reach, drops)
    if reach.rejects:
        return f"REJECTs although {len(usable)} endpoint(s) are usable"
    if reach.drops:
        return f"DROPs although {len(usable)} endpoint(s) are usable"
    reached, wanted = set(reach.probabilities), set(usable)
    if reached != wanted:
        extra = ", ".join(sorted(str(b) for b in reached - wanted))
        missing = ", ".join(sorted(str(b) for b in wanted - reached))
        return (
            "reaches the wrong endpoints"
            + (f"; extra {extra}" if extra else "")
            + (f"; missing {missing}" if missing else "")
        )
    share = 1.0 / len(wanted)
    skewed = {str(b): p for b, p in reach.probabilities.items() if abs(p - share) > TOLERANCE}
    if skewed:
        text = ", ".join(f"{b}={p:.6f}" for b, p in sorted(skewed.items()))
        return f"probabilities are not 1/{len(wanted)}: {text}"
    return None


def _empty_mismatch(reach: Reachability, drops: bool) -> str | None:
    """Why rules for a port without usable endpoints are wrong, or None."""
    wanted, other = ("DROP", "REJECTs") if drops else ("REJECT", "DROPs")
    why = "has endpoints, none on this node," if drops else "has no endpoints"
    if reach.probabilities:
        reached = ", ".join(sorted(str(b) for b in reach.probabilities))
        return f"{why} but sends new connections to {reached}"
    if (reach.rejects and drops) or (reach.drops and not drops):
        return f"{why} but {other} (kube-proxy must {wanted})"
    if not (reach.drops if drops else reach.rejects):
        return f"{why} but does not {wanted}"
    return None


def _opted_out_mismatch(reach: Reachability, label: str) -> str | None:
    """Why rules for an opted-out Service are wrong (it is programmed), or None."""
    if reach.probabilities:
        reached = ", ".join(sorted(str(b) for b in reach.probabilities))
        return f"is labelled {label} (not this proxy's) but sends new connections to {reached}"
    if reach.rejects:
        return f"is labelled {label} (not this proxy's) but REJECTs new connections"
    return None


def check_exact_balance(
    service: str,
    usable: Collection[Backend],
    reach: Reachability,
    drops: bool = False,
    opted_out: str | None = None,
) -> Verdict:
    why = reachability_mismatch(usable, reach, drops, opted_out)
    evidence = {
        "rejects": reach.rejects,
        "drops": reach.drops,
        "probabilities": {str(b): round(p, 10) for b, p in sorted(reach.probabilities.items())},
        "read_from": reach.detail,
    }
    if why is None:
        return passed(PROPERTY, f"{service}: programmed rules match the model", **evidence)
    return failed(PROPERTY, f"{service}: programmed rules {why}", service=service, **evidence)
