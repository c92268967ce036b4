"""Every port of a Service is judged, not only the first.

A Service may have several ports (`harness.events.CreateMultiPortService`); kube-proxy programs
each Service port on its own (its `ServicePortName` is namespace/name:port plus the protocol, and
every port has its own endpoints, its own REJECT or DROP and its own affinity), so a proxy can get
one port right and another wrong. The runner converges and judges the Service on its first port
(`harness.runner.PORT`) and then, on the same final state, every other port here: the rules read
back where the target can, and a fresh confirmation sample judged by no-stale-traffic,
reject-when-empty and availability against that port's own expectation
(`harness.model.endpoints.expect`: a named targetPort resolved per pod, pods lacking the name
left out, REJECT when no endpoint has the port).

Affinity is judged on the first port only: a ClientIP client may sit on different backends on
different ports (upstream keeps one affinity record per Service port), and the runner's affinity
memory is per Service.

Pure except through the two callables it is given; it changes nothing on the target.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.checks.rules import check_exact_balance
from harness.checks.traffic import check_availability, check_no_stale, check_reject
from harness.checks.verdict import Verdict, failed, passed
from harness.model.endpoints import Expectation, expect
from harness.model.objects import Service
from harness.model.state import ClusterState
from harness.traffic import Reachability, TrafficSample

SendPort = Callable[[str, Expectation], TrafficSample]
"""Sends a confirmation sample to the port named by the first argument."""
ReadPort = Callable[[str], Reachability]
"""Reads back where new connections to the named port go."""


def other_ports(service: Service | None, first: str) -> tuple[str, ...]:
    """The names of `service`'s ports other than `first`, in the Service's order (none for a
    deleted Service or one of a single port)."""
    if service is None:
        return ()
    return tuple(p.name for p in service.ports if p.name != first)


REMOVED_SAMPLE = 20
"""Fresh connections to a removed port per look: a data plane still serving a share of 0.21 or
more of them there is caught with probability 0.99 (1 - 0.79**20)."""
REMOVED_PART = "removed-port"


def removed_ports(old: Service | None, new: Service | None) -> tuple[tuple[int, str], ...]:
    """(number, protocol) of every port `old` had and `new`, the same Service after the step,
    no longer has (`remove-service-port`, a protocol changed; kube-proxy keys a Service port by
    its number and protocol, `ServicePortName` plus protocol): none when either is missing."""
    if old is None or new is None:
        return ()
    kept = {(p.port, str(p.protocol)) for p in new.ports}
    return tuple(
        sorted(
            {(p.port, str(p.protocol)) for p in old.ports if (p.port, str(p.protocol)) not in kept}
        )
    )


def judge_removed_port(service: str, port: tuple[int, str], sample: TrafficSample) -> Verdict:
    """`no-stale-traffic`, part `removed-port`: no pod answers on a port the Service no longer
    has once the change is programmed (refused or unanswered alike: kube-proxy's nftables mode
    rejects a ClusterIP's unused ports, its iptables mode lets them fall through)."""
    label = f"{service}:{port[0]}/{port[1]}"
    answered = sorted({str(o.backend) for o in sample.outcomes if o.backend is not None})
    evidence = {
        "part": REMOVED_PART,
        "service": service,
        "port": port[0],
        "protocol": port[1],
        "connections": len(sample.outcomes),
        "answered_by": answered,
        "errors": {str(kind): n for kind, n in sorted(sample.errors().items())},
    }
    if answered:
        return failed(
            "no-stale-traffic",
            f"{label}: a port the Service no longer has still reaches {', '.join(answered)}",
            **evidence,
        )
    return passed("no-stale-traffic", f"{label}: removed, no pod answers there", **evidence)


def port_label(service: str, port: str) -> str:
    """How a verdict names one port of a Service: `svc-a:admin`."""
    return f"{service}:{port}"


def judge_port(
    label: str, expected: Expectation, sample: TrafficSample, reach: Reachability | None
) -> list[Verdict]:
    """The verdicts of one further port: exact-balance (when `reach` was read), no-stale-traffic,
    reject-when-empty and availability, each naming the port by `label` (an opted-out Service's
    ports are all unprogrammed, as its first is)."""
    verdicts = []
    usable, drops, opted_out = expected.usable, expected.drops, expected.opted_out
    if reach is not None:
        verdicts.append(check_exact_balance(label, usable, reach, drops, opted_out))
    return [
        *verdicts,
        check_no_stale(label, expected.usable, sample),
        check_reject(label, usable, sample, drops, opted_out),
        check_availability(label, expected.usable, sample),
    ]


def judge_other_ports(
    state: ClusterState,
    service: str,
    first: str,
    send: SendPort,
    read: ReadPort | None,
) -> list[Verdict]:
    """Every port of `service` in `state` but `first`, each judged on a sample `send` takes
    for it (and on its rules, when `read` is given)."""
    verdicts: list[Verdict] = []
    for port in other_ports(state.services.get(service), first):
        expected = expect(state, service, port)
        reach = read(port) if read is not None else None
        verdicts += judge_port(port_label(service, port), expected, send(port, expected), reach)
    return verdicts
