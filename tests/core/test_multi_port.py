"""Services of several ports (issue 12, item 3) in the model, the events, the search and the
features: named targetPorts resolve per pod, a pod lacking a name is left out of that port only
(upstream `getEndpointPorts` skips a port `FindPort` cannot resolve), port changes are events
with one clear line for bad input, every port is judged, and an implementation that does not
declare `multi-port` is never given a Service of several ports."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings

from harness.conformance import uncheckable_features
from harness.errors import UsageError
from harness.events import (
    CreateMultiPortPod,
    CreateMultiPortService,
    CreatePod,
    DeletePod,
    Event,
    SetServicePort,
    apply_all,
    event_from_json,
)
from harness.features import CORE_FEATURES, attribute_failure
from harness.model.endpoints import expect
from harness.model.objects import labels_of
from harness.proxies.iptables import IptablesProxy
from harness.runner import Runner
from harness.strategies import EventSpace, event_sequences
from harness.targets.model import ModelTarget

WEB = labels_of({"app": "web"})
THREE_PORTS: list[Event] = [
    CreateMultiPortService("svc-a", WEB, port_count=3),
    CreateMultiPortPod("p-0", WEB, http_port=8080, admin_port=9090),
    CreateMultiPortPod("p-1", WEB, http_port=8081, admin_port=9091),
    CreatePod("p-2", WEB),
]
MULTI_KINDS = {"create-multi-port-service", "create-multi-port-pod", "set-service-port"}


def ports_of(events: list[Event], port: str) -> dict[str, int]:
    """Each usable pod's endpoint port for the Service port `port`."""
    return {d.backend.pod: d.port for d in expect(apply_all(events), "svc-a", port).destinations}


def test_named_ports_resolve_per_pod_and_a_pod_lacking_one_is_left_out_of_it_only() -> None:
    assert ports_of(THREE_PORTS, "http") == {"p-0": 8080, "p-1": 8081, "p-2": 8080}
    assert ports_of(THREE_PORTS, "admin") == {"p-0": 9090, "p-1": 9091}
    assert ports_of(THREE_PORTS, "alt") == ports_of(THREE_PORTS, "http")
    assert not expect(apply_all(THREE_PORTS[:1]), "svc-a", "admin").drops  # none: REJECT


def test_a_port_change_moves_the_port_and_its_endpoints() -> None:
    moved = [*THREE_PORTS, SetServicePort("svc-a", "alt", 82, "admin")]
    service = apply_all(moved).services["svc-a"]
    assert [(p.name, p.port, p.target_port) for p in service.ports][2] == ("alt", 82, "admin")
    assert ports_of(moved, "alt") == {"p-0": 9090, "p-1": 9091}
    numeric = [*THREE_PORTS, SetServicePort("svc-a", "http", 80, 8080)]
    assert ports_of(numeric, "http") == {"p-0": 8080, "p-1": 8080, "p-2": 8080}


def set_port(**fields: object) -> dict[str, object]:
    return {"kind": "set-service-port", "service": "svc-a", "target_port": "http", **fields}


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (
            {"kind": "create-multi-port-service", "service": "s", "selector": {}, "port_count": 1},
            "2 to 3",
        ),
        ({"kind": "create-multi-port-pod", "pod": "p", "labels": {}, "admin_port": 8080}, "differ"),
        (set_port(port_name="nope", port=80), "no TCP port named"),
        (set_port(port_name="alt", port=80), "already has TCP port 80"),
        (set_port(port_name="http", port=70000), "1 to 65535"),
        (set_port(port_name="http", port=80, protocol="QUIC"), "must be one of TCP, UDP"),
        (set_port(port_name="Bad_Name", port=80), "port_name"),
    ],
)
def test_bad_port_events_are_one_line(data: dict[str, object], complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint) as raised:
        apply_all([event_from_json(data)], apply_all(THREE_PORTS[:1]))
    assert "\n" not in str(raised.value)


def test_every_port_is_judged_on_the_model() -> None:
    runner = Runner(ModelTarget())
    runner.reset()
    verdicts = [v for result in runner.run(THREE_PORTS) for v in result.verdicts]
    judged = {m.group(1) for v in verdicts if (m := re.match(r"svc-a:(\w+):", v.message))}
    assert judged == {"admin", "alt"}
    assert all(v.holds for v in verdicts)
    assert any("multi-port-named" in record["features"] for record in runner.history)


@settings(max_examples=60, deadline=None)
@given(event_sequences(EventSpace().for_features(CORE_FEATURES), max_events=25))
def test_a_space_without_multi_port_never_draws_it(events: list[Event]) -> None:
    assert not {e.kind for e in events} & MULTI_KINDS
    assert all(len(s.ports) == 1 for s in apply_all(events).services.values())


def test_the_feature_is_declared_attributed_and_uncheckable_where_unsupported() -> None:
    assert "multi-port" in IptablesProxy.features
    assert EventSpace().for_features(IptablesProxy.features).supports("multi-port")
    assert attribute_failure("availability", THREE_PORTS) == {"multi-port"}

    assert "multi-port-named" in uncheckable_features(ModelTarget(), CORE_FEATURES)


def test_the_terminating_fallback_is_decided_per_port() -> None:
    """A ready pod that lacks the `admin` name does not keep `admin` from falling back to the
    serving-terminating pod that has it: kube-proxy keys endpoints by Service port and
    categorizes each port's own (pkg/proxy/topology.go, called per ServicePortName); `http`,
    which the ready pod has, keeps to it."""
    state = apply_all(
        [
            CreateMultiPortService("svc-a", WEB, port_count=2),
            CreateMultiPortPod("p-0", WEB, http_port=8080, admin_port=9090),
            CreatePod("p-2", WEB),  # ready, without `admin`
            DeletePod("p-0", grace_s=30),  # terminating, still serving
        ]
    )
    assert [b.pod for b in expect(state, "svc-a", "admin").usable] == ["p-0"]
    assert [b.pod for b in expect(state, "svc-a", "http").usable] == ["p-2"]
