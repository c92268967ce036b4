"""One port number on TCP and UDP in one Service, ports added and removed, and protocol changes
(issue 12, item 3): the model's semantics, the JSON round trip, where the search draws them,
the features and coverage state they count for, their API mapping, and bad input (a UDP probe
to a Service without a UDP port, an unknown protocol) as one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.coverage import has_dual_protocol_port, service_features
from harness.errors import InvalidEvent, UsageError
from harness.events import (
    AddServicePort,
    CreateDualProtocolService,
    CreateService,
    Event,
    Probe,
    RemoveServicePort,
    Scale,
    SetPortProtocol,
    SetReady,
    apply_all,
    event_from_json,
    sequence_to_json,
)
from harness.features import FEATURES, MULTI_PORT, UDP_FEATURE
from harness.kube.objects import Placement, Verb, plan
from harness.model.endpoints import expect
from harness.model.objects import Protocol, labels_of
from harness.runner import RunConfig, Runner
from harness.strategies import EventSpace, event_sequences
from harness.targets.model import ModelTarget

WEB = labels_of({"app": "web"})
DUAL = [CreateDualProtocolService("svc-a", WEB), Scale("web", 2)]
PORT_KINDS = {"create-dual-protocol-service", "add-service-port", "remove-service-port"}
UDP_KINDS = {"create-dual-protocol-service", "set-port-protocol"}


def ports(events: list[Event]) -> list[tuple[str, int, str, int | str]]:
    service = apply_all(events).service("svc-a")
    return [(p.name, p.port, p.protocol, p.target_port) for p in service.ports]


def test_a_dual_protocol_service_serves_one_number_on_both_protocols() -> None:
    assert ports(DUAL) == [("http", 80, "TCP", "http"), ("udp", 80, "UDP", "udp")]
    state = apply_all(DUAL)
    tcp, udp = expect(state, "svc-a", "http"), expect(state, "svc-a", "udp")
    assert len(tcp.usable) == 2 and tcp.usable == udp.usable  # the same pods, one each
    assert has_dual_protocol_port(state.service("svc-a"))
    assert "dual-protocol-port" in service_features(tcp)


def test_removing_one_protocol_leaves_the_other_alone() -> None:
    state = apply_all([*DUAL, RemoveServicePort("svc-a", "udp")])
    assert [p.protocol for p in state.service("svc-a").ports] == ["TCP"]
    assert (
        expect(state, "svc-a", "http").destinations
        == expect(apply_all(DUAL), "svc-a", "http").destinations
    )
    assert not expect(state, "svc-a", "udp").destinations  # no such port any more
    assert not has_dual_protocol_port(state.service("svc-a"))


def test_ports_are_added_and_change_protocol_in_one_update() -> None:
    added = [*DUAL, AddServicePort("svc-a", "dns", 53, "udp", Protocol.UDP)]
    assert ports(added)[-1] == ("dns", 53, "UDP", "udp")
    changed = [*added, SetPortProtocol("svc-a", "dns", Protocol.TCP, "http")]
    assert ports(changed)[-1] == ("dns", 53, "TCP", "http")
    assert len(expect(apply_all(changed), "svc-a", "dns").usable) == 2  # pods serve http


@pytest.mark.parametrize(
    ("event", "complaint"),
    [
        (AddServicePort("svc-a", "dns", 80, "udp", Protocol.UDP), "already has UDP port 80"),
        (AddServicePort("svc-a", "udp", 53, "udp", Protocol.UDP), "already has a port named"),
        (AddServicePort("svc-a", "dns", 0, "udp", Protocol.UDP), "must be 1 to 65535"),
        (RemoveServicePort("svc-a", "http"), "every Service keeps"),
        (RemoveServicePort("svc-a", "dns"), "no port named 'dns'"),
        (SetPortProtocol("svc-a", "udp", Protocol.TCP, "http"), "already has TCP port 80"),
        (SetPortProtocol("svc-a", "udp", Protocol.UDP, "udp"), "is already UDP"),
        (SetPortProtocol("svc-a", "http", Protocol.UDP, "udp"), "every Service keeps"),
        (Probe("svc-a", protocol=Protocol.UDP), "port 'http', which is not UDP"),
    ],
)
def test_invalid_port_events_are_refused_with_the_reason(event: Event, complaint: str) -> None:
    with pytest.raises(InvalidEvent, match=complaint):
        apply_all([*DUAL, event])


def test_a_dual_protocol_service_starts_with_tcp() -> None:
    with pytest.raises(InvalidEvent, match="first port is TCP"):
        apply_all([CreateDualProtocolService("svc-a", WEB, protocol=Protocol.UDP)])


@pytest.mark.parametrize(
    "event",
    [
        DUAL[0],
        AddServicePort("svc-a", "dns", 53, 9053, Protocol.UDP),
        RemoveServicePort("svc-a", "udp"),
        SetPortProtocol("svc-a", "udp", Protocol.TCP, "http"),
        Probe("svc-a", protocol=Protocol.UDP),
    ],
)
def test_the_new_events_round_trip_through_json(event: Event) -> None:
    assert event_from_json(json.loads(json.dumps(event.to_json()))) == event


def test_protocol_events_count_for_udp_and_port_events_for_multi_port() -> None:
    udp, several = FEATURES[UDP_FEATURE].uses, FEATURES[MULTI_PORT].uses
    assert udp is not None and several is not None
    assert udp(DUAL[0]) and udp(SetPortProtocol("s", "p", Protocol.TCP, "http"))
    assert udp(AddServicePort("s", "p", 53, "udp", Protocol.UDP))
    assert not udp(AddServicePort("s", "p", 53, "http")) and not udp(RemoveServicePort("s", "p"))
    assert all(several(e) for e in (DUAL[0], RemoveServicePort("s", "p")))
    assert "dual-protocol-port" in FEATURES[UDP_FEATURE].states


def drawn_kinds(space: EventSpace) -> set[str]:
    """The kinds 200 derandomized sequences draw (100 stopped drawing set-port-protocol once
    move-pod and drain-node joined the kinds)."""
    seen: set[str] = set()

    @settings(
        max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(event_sequences(space, max_events=15))
    def collect(events: list[Event]) -> None:
        seen.update(e.kind for e in events)
        for event in events:  # a UDP port is drawn only where UDP is made
            assert space.makes_udp or "UDP" not in str(event), event

    collect()
    return seen


def test_udp_ports_are_drawn_only_where_udp_is_made_and_multi_port_declared() -> None:
    assert drawn_kinds(EventSpace(udp=True)) >= UDP_KINDS | PORT_KINDS
    assert not UDP_KINDS & drawn_kinds(EventSpace())  # the target sends no UDP
    without_udp = EventSpace(udp=True).for_features(frozenset({"clusterip-tcp", MULTI_PORT}))
    assert not UDP_KINDS & drawn_kinds(without_udp)
    without_ports = EventSpace(udp=True).for_features(frozenset({"clusterip-tcp", UDP_FEATURE}))
    assert not (UDP_KINDS | PORT_KINDS) & drawn_kinds(without_ports)


def test_a_protocol_change_patches_the_whole_ports_list() -> None:
    """As `kubectl apply` would: the TCP port gone and the UDP one there in one update."""
    placement = Placement("svc-lb-hk00001", "hk00001", nodes={"node-1": "w1"})
    before = apply_all([*DUAL, AddServicePort("svc-a", "dns", 53, "http")])
    after = SetPortProtocol("svc-a", "dns", Protocol.UDP, "udp").apply(before)
    (patched,) = plan(before, after, placement)
    assert patched.verb is Verb.PATCH_SERVICE and patched.body is not None
    assert [(p["name"], p["port"], p["protocol"]) for p in patched.body["spec"]["ports"]] == [
        ("http", 80, "TCP"),
        ("udp", 80, "UDP"),
        ("dns", 53, "UDP"),
    ]


def replay(tmp_path: Path, capsys: pytest.CaptureFixture[str], events: list[object]) -> str:
    """`harness replay` of a sequence file holding `events` (JSON objects): exit 2 and one
    line on stderr, no traceback; that line."""
    path = tmp_path / "sequence.json"
    path.write_text(json.dumps({**sequence_to_json([]), "events": events}))
    code = main(["replay", str(path), "--target", "model"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_a_udp_probe_to_a_service_without_a_udp_port_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    created = CreateService("svc-a", WEB).to_json()
    probe = {"kind": "probe", "service": "svc-a", "protocol": "UDP"}
    err = replay(tmp_path, capsys, [created, probe])
    assert "has no UDP port (its ports: http 80/TCP)" in err and "add-service-port" in err


@pytest.mark.parametrize(
    "event",
    [
        {"kind": "create-service", "service": "svc-a", "selector": {"app": "web"},
         "protocol": "QUIC"},
        {"kind": "add-service-port", "service": "svc-a", "port_name": "x", "port": 53,
         "target_port": "udp", "protocol": "DCCP"},
        {"kind": "set-port-protocol", "service": "svc-a", "port_name": "udp",
         "target_port": "udp", "protocol": "udp"},
        {"kind": "probe", "service": "svc-a", "protocol": 17},
    ],
)  # fmt: skip
def test_an_unknown_protocol_in_a_sequence_file_is_one_line(
    event: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = replay(tmp_path, capsys, [DUAL[0].to_json(), event])
    assert "protocol must be one of TCP, UDP, SCTP, got" in err, err


def test_an_unknown_protocol_is_a_usage_error_when_parsed() -> None:
    with pytest.raises(UsageError, match="must be one of TCP, UDP, SCTP, got 'DCCP'"):
        event_from_json({"kind": "probe", "service": "svc-a", "protocol": "DCCP"})


@given(st.sampled_from([Protocol.TCP, Protocol.UDP]))
def test_a_probe_of_the_probed_ports_protocol_applies(protocol: Protocol) -> None:
    created = CreateService(
        "svc-a", WEB, "udp" if protocol == Protocol.UDP else "http", protocol=protocol
    )
    assert apply_all([created, Probe("svc-a", protocol=protocol)]) == apply_all([created])


def test_a_connection_held_on_the_tcp_port_of_a_dual_service_is_tcp_on_the_model() -> None:
    """The model target held every connection to a Service with any UDP port as a UDP flow,
    which moves to another backend when its own goes: on a dual-protocol Service that is a
    TCP connection silently moved, a false alarm of long-lived-connections."""
    target = ModelTarget()
    target.open()
    runner = Runner(target, RunConfig())
    runner.reset()
    unready = [SetReady("web-0", False), SetReady("web-1", False)]
    results = runner.run([CreateDualProtocolService("svc-a", WEB), Scale("web", 3), *unready])
    held = [v for r in results for v in r.verdicts if v.property == "long-lived-connections"]
    assert held and all(v.holds for v in held), [v.message for v in held]
