"""The protocol schema: it is a valid JSON Schema, and it accepts exactly the messages it should."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from harness.model.objects import (
    TRAFFIC_DISTRIBUTIONS,
    Affinity,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
)
from harness.proxies.base import NodeContext
from harness.proxies.protocol import (
    PROTOCOL_VERSION,
    ProtocolError,
    check_request,
    encode,
    endpoint_slice_from_json,
    endpoint_slice_json,
    hello,
    node_from_json,
    parse_reply,
    schema,
    service_from_json,
    service_json,
)

SCHEMA_FILE = Path(__file__).parents[2] / "harness" / "schemas" / "proxy-protocol.json"


def test_the_schema_file_is_a_valid_versioned_json_schema() -> None:
    loaded = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(loaded)
    assert loaded == schema()
    assert loaded["version"] == PROTOCOL_VERSION
    assert {"request", "reply"} <= set(loaded["$defs"])


def test_the_schema_ships_with_the_package() -> None:
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"schemas/*.json"' in pyproject


names = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)
ips = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ports = st.integers(1, 65535)
services = st.builds(
    Service,
    name=names,
    cluster_ip=ips,
    selector=st.just((("app", "web"),)),
    ports=st.lists(
        st.builds(
            ServicePort,
            name=names,
            port=ports,
            target_port=st.one_of(ports, names),
            protocol=st.sampled_from(["TCP", "UDP"]),
        ),
        max_size=3,
    ).map(tuple),
    session_affinity=st.sampled_from(Affinity),
    affinity_timeout_s=st.integers(1, 86400),
    publish_not_ready_addresses=st.booleans(),
    internal_traffic_policy=st.sampled_from(TrafficPolicy),
    traffic_distribution=st.sampled_from([None, *TRAFFIC_DISTRIBUTIONS]),
)
node_ports = st.integers(30000, 32767)


@st.composite
def external_services(draw: st.DrawFn) -> Service:
    """A NodePort or LoadBalancer Service: a node port on every port, its externalTrafficPolicy,
    and (a LoadBalancer's) an ingress IP and a healthCheckNodePort when assigned."""
    service = draw(services)
    kind = draw(st.sampled_from([ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER]))
    balancer = kind == ServiceType.LOAD_BALANCER
    return replace(
        service,
        type=kind,
        ports=tuple(replace(p, node_port=draw(node_ports)) for p in service.ports),
        external_traffic_policy=draw(st.sampled_from(TrafficPolicy)),
        load_balancer_ip=draw(st.one_of(st.none(), ips)) if balancer else None,
        health_check_node_port=draw(st.one_of(st.none(), node_ports)) if balancer else None,
    )


@st.composite
def addressed_services(draw: st.DrawFn) -> Service:
    """A Service of any type with one or two externalIPs and its externalTrafficPolicy."""
    service = draw(st.one_of(services, external_services()))
    addresses = st.integers(10, 250).map(lambda i: f"10.254.0.{i}")
    return replace(
        service,
        external_ips=tuple(draw(st.lists(addresses, min_size=1, max_size=2, unique=True))),
        external_traffic_policy=draw(st.sampled_from(TrafficPolicy)),
    )


any_services = st.one_of(services, external_services(), addressed_services())
endpoints = st.builds(
    Endpoint,
    address=ips,
    pod=names,
    uid=names,
    node=st.sampled_from(["node-1", "node-2"]),
    zone=st.sampled_from(["zone-a", "zone-b"]),
    ready=st.booleans(),
    serving=st.booleans(),
    terminating=st.booleans(),
    zone_hints=st.lists(st.sampled_from(["zone-a", "zone-b", "zone-c"]), max_size=2).map(tuple),
)
slices = st.builds(
    EndpointSlice,
    service=names,
    ports=st.lists(st.builds(EndpointPort, name=names, port=ports), max_size=3).map(tuple),
    endpoints=st.lists(endpoints, max_size=5).map(tuple),
    name=names,
)


@given(any_services, any_services, slices, slices)
def test_every_model_object_encodes_to_a_valid_request(
    old_service: Service, service: Service, old_slice: EndpointSlice, endpoint_slice: EndpointSlice
) -> None:
    messages = [
        {"type": "service_add", "service": service_json(service)},
        {
            "type": "service_update",
            "old": service_json(old_service),
            "service": service_json(service),
        },
        {"type": "service_delete", "service": service_json(service)},
        {"type": "endpoint_slice_add", "endpoint_slice": endpoint_slice_json(endpoint_slice)},
        {
            "type": "endpoint_slice_update",
            "old": endpoint_slice_json(old_slice),
            "endpoint_slice": endpoint_slice_json(endpoint_slice),
        },
        {"type": "endpoint_slice_delete", "endpoint_slice": endpoint_slice_json(endpoint_slice)},
        {"type": "sync"},
        {"type": "shutdown"},
    ]
    for seq, message in enumerate(messages, start=1):
        message["seq"] = seq
        check_request(message)
        assert json.loads(encode(message)) == message


def test_hello_carries_the_version_and_the_node(tmp_path: Path) -> None:
    message = {**hello(NodeContext("node-1", "hk12345-node", "hk12345", tmp_path)), "seq": 1}
    check_request(message)
    assert message["protocol"] == PROTOCOL_VERSION


@pytest.mark.parametrize(
    "message",
    [
        {"type": "sync"},  # no seq
        {"type": "sync", "seq": 0},
        {"type": "resync", "seq": 1},
        {"type": "sync", "seq": 1, "extra": True},
        {"type": "service_add", "seq": 1, "service": {"name": "web"}},
        {"type": "hello", "seq": 1, "protocol": 2, "node": {}},
        ["sync"],
    ],
)
def test_malformed_requests_are_refused(message: object) -> None:
    with pytest.raises(ProtocolError):
        check_request(message)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "line",
    [b'{"ok": true}', b'{"ok": true, "seq": 4}', b'{"ok": false, "error": "no"}', b' {"ok":true} '],
)
def test_valid_replies_parse(line: bytes) -> None:
    assert "ok" in parse_reply(line)


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        (b"ok", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[true]", "is not of type 'object'"),
        (b"{}", "'ok' is a required property"),
        (b'{"ok": "yes"}', "is not of type 'boolean'"),
        (b'{"ok": false}', "'error' is a required property"),
        (b'{"ok": true, "note": 1}', "Additional properties"),
        (b'{"ok": true, "seq": -1}', "less than the minimum"),
    ],
)
def test_garbage_replies_are_refused_with_a_reason(line: bytes, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        parse_reply(line)


@given(any_services, slices)
def test_the_proxy_side_reads_back_what_the_harness_sends(
    service: Service, endpoint_slice: EndpointSlice
) -> None:
    decoded_service = service_from_json(service_json(service))
    assert decoded_service == replace(service, selector=())  # the protocol carries no selector
    assert endpoint_slice_from_json(endpoint_slice_json(endpoint_slice)) == endpoint_slice


def test_the_proxy_side_reads_back_the_node(tmp_path: Path) -> None:
    node = NodeContext("node-1", "hk12345-node", "hk12345", tmp_path, "10.96.0.0/12")
    assert node_from_json(hello(node)["node"]) == node
