"""The kernel proxies' health-check server (`harness.proxies.healthcheck`): kube-proxy's answer,
its ports opened and released with the Services, bounded, and gone with the proxy."""

from __future__ import annotations

import socket
import threading

import pytest

from harness.local.healthprobe import ask_health, parse_reply
from harness.local.names import netns_path
from harness.local.netns import entered
from harness.model.objects import Endpoint, EndpointSlice, Service, ServiceType, TrafficPolicy
from harness.proxies import healthcheck
from harness.proxies.healthcheck import HealthEntry, HealthServer, health_entries, response
from harness.proxies.iptables import IptablesProxy
from harness.traffic import ErrorKind, HealthCheckRequest
from tests.proxies.conftest import ProxyFactory

ENTRY = HealthEntry("default", "web", 30005, 2)
WEB = Service(
    "web",
    "10.96.0.10",
    (),
    type=ServiceType.LOAD_BALANCER,
    external_traffic_policy=TrafficPolicy.LOCAL,
    health_check_node_port=30005,
)


def test_the_answer_is_kube_proxys() -> None:
    reply = parse_reply(HealthCheckRequest("node-1", 30005), response(ENTRY))
    assert (reply.status, reply.local_endpoints, reply.service) == (200, 2, ("default", "web"))
    assert reply.nosniff and reply.body == {
        "service": {"namespace": "default", "name": "web"},
        "localEndpoints": 2,
        "serviceProxyHealthy": True,
    }
    none_left = parse_reply(HealthCheckRequest("node-1", 1), response(HealthEntry("a", "b", 1, 0)))
    assert (none_left.status, none_left.local_endpoints) == (503, 0)
    garbled = parse_reply(HealthCheckRequest("node-1", 1), b"SSH-2.0\r\n")
    assert garbled.error == ErrorKind.OTHER and "not an HTTP response" in garbled.detail


def test_entries_count_ready_local_addresses_once_and_skip_services_without_the_port() -> None:
    ready = Endpoint("10.244.0.5", "p1", "u1", "node-1", "zone-a", True, True, False)
    terminating = Endpoint("10.244.0.6", "p2", "u2", "node-1", "zone-a", False, True, True)
    elsewhere = Endpoint("10.244.16.5", "p3", "u3", "node-2", "zone-b", True, True, False)
    slices = (EndpointSlice("web", (), (ready, terminating, elsewhere), name="a"),
              EndpointSlice("web", (), (ready,), name="b"))  # fmt: skip
    plain = Service("plain", "10.96.0.11", ())
    found = health_entries([WEB, plain], lambda name: slices, "node-1")
    assert found == {"web": HealthEntry("default", "web", 30005, 1)}


def connect(netns: str, port: int) -> socket.socket:
    with entered(netns_path(netns)):
        sock = socket.socket()
    sock.settimeout(2)
    sock.connect(("127.0.0.1", port))
    return sock


def test_the_server_answers_releases_ports_and_ends_its_thread(
    netns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(healthcheck, "READ_TIMEOUT_S", 0.2)
    before = threading.active_count()
    server = HealthServer(netns)
    try:
        server.sync({"web": ENTRY})
        assert server.listening == {"web": 30005} and not server.failures
        reply = ask_health(netns, "127.0.0.1", HealthCheckRequest("node-1", 30005))
        assert (reply.status, reply.local_endpoints) == (200, 2)
        silent = connect(netns, 30005)  # never sends its header: closed unanswered
        assert silent.recv(100) == b""
        silent.close()
        server.sync({"web": HealthEntry("default", "web", 30006, 0)})  # moved: old port closed
        assert ask_health(netns, "127.0.0.1", HealthCheckRequest("n", 30005)).error == (
            ErrorKind.REFUSED
        )
        assert ask_health(netns, "127.0.0.1", HealthCheckRequest("n", 30006)).status == 503
    finally:
        server.close()
        server.close()  # idempotent
    assert threading.active_count() == before
    assert ask_health(netns, "127.0.0.1", HealthCheckRequest("n", 30006)).error == (
        ErrorKind.REFUSED
    )


def test_connections_beyond_the_bound_are_closed_unanswered(
    netns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(healthcheck, "MAX_CONNECTIONS", 1)
    server = HealthServer(netns)
    try:
        server.sync({"web": ENTRY})
        first = connect(netns, 30005)  # holds the one place: it never sends its header
        second = ask_health(netns, "127.0.0.1", HealthCheckRequest("node-1", 30005))
        assert second.status is None and second.error in (ErrorKind.RESET, ErrorKind.OTHER)
        first.close()
    finally:
        server.close()


def test_a_port_taken_is_reported_and_tried_again(netns: str) -> None:
    with entered(netns_path(netns)):
        holder = socket.socket()
    holder.bind(("0.0.0.0", 30005))
    holder.listen()
    server = HealthServer(netns)
    try:
        server.sync({"web": ENTRY})
        assert server.listening == {} and "30005" in server.failures["web"]
        holder.close()
        server.sync({"web": ENTRY})
        assert server.listening == {"web": 30005} and not server.failures
    finally:
        server.close()
        holder.close()


def test_a_proxy_serves_nothing_without_the_port_and_stops_its_server(
    start_proxy: ProxyFactory,
) -> None:
    proxy = start_proxy(IptablesProxy)
    proxy.sync()
    assert proxy.health is not None and proxy.health.listening == {}
    assert proxy.health._thread is None  # started only for a Service that needs it
    proxy.on_service_add(WEB)
    proxy.sync()
    server = proxy.health
    assert server.listening == {"web": 30005}
    proxy.stop()
    assert proxy.health is None and server._thread is None
