"""Property `endpoints`: the EndpointSlices a target publishes match the model (I1-I3)."""

from __future__ import annotations

from collections.abc import Iterable

from harness.checks.verdict import Verdict, failed, passed
from harness.model.endpoints import unique_endpoints
from harness.model.objects import EndpointSlice

PROPERTY = "endpoints"

_Row = tuple[str, str, bool, bool, bool, tuple[tuple[str, int], ...]]


def _rows(slices: Iterable[EndpointSlice]) -> set[_Row]:
    """Endpoints as comparable rows: pod, incarnation, conditions and resolved ports.

    Addresses are not compared: a real cluster allocates its own, and the pod and incarnation
    identify an endpoint exactly (targetRef name and UID, endpointslice.go Conformance).
    """
    return {
        (
            endpoint.pod,
            endpoint.uid,
            endpoint.ready,
            endpoint.serving,
            endpoint.terminating,
            tuple(sorted((p.name, p.port) for p in endpoint_slice.ports)),
        )
        for endpoint, endpoint_slice in unique_endpoints(slices)
    }


def _describe(row: _Row) -> str:
    pod, uid, ready, serving, terminating, ports = row
    flags = ",".join(
        n for n, v in (("ready", ready), ("serving", serving), ("terminating", terminating)) if v
    )
    port_text = ",".join(f"{name}:{port}" for name, port in ports)
    return f"{pod}/{uid}[{flags or 'none'}]({port_text})"


def check_endpoints(
    service: str, expected: Iterable[EndpointSlice], observed: Iterable[EndpointSlice]
) -> Verdict:
    """The de-duplicated endpoints of `observed` equal those of `expected`, conditions included.

    Duplicate slices are allowed (the controller may write more slices than needed), so both
    sides are de-duplicated before comparing.
    """
    want, got = _rows(expected), _rows(observed)
    if want == got:
        return passed(PROPERTY, f"{service}: {len(want)} endpoint(s) match", service=service)
    missing = sorted(_describe(r) for r in want - got)
    unexpected = sorted(_describe(r) for r in got - want)
    return failed(
        PROPERTY,
        f"{service}: EndpointSlices differ from the model"
        + (f"; missing {', '.join(missing)}" if missing else "")
        + (f"; unexpected {', '.join(unexpected)}" if unexpected else ""),
        service=service,
        missing=missing,
        unexpected=unexpected,
    )
