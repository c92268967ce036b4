"""Cutting the proxy's API connections (`RestartProxy(api_only=True)`; issue 12 item 4).

The relay part with real sockets on loopback: a client through the relay to an echo server, its
connection cut (both ends closed, EOF or reset at the client), the relay still listening so a
new connection works. Then the event (JSON, drawn only where `cuts_api`) and the kube target's
wiring: cut through the runtime under `--pods local` with `--proxy-command`, refused with the
reason elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fakecluster import FakeCluster
from hypothesis import given, settings
from hypothesis import strategies as st
from mockapi import MockApiServer

from harness.errors import InvalidEvent, UsageError
from harness.events import CreateService, RestartProxy, Scale, event_from_json
from harness.kube.api import Cluster
from harness.kube.relay import Relay
from harness.model import labels_of
from harness.model.state import ClusterState
from harness.registry import TargetOptions
from harness.strategies import GENERATORS, EventSpace
from harness.targets.kube import KubeTarget
from harness.traffic import TrafficRequest


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1 (its port), one thread per connection, closed after."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()


def echoed(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    return sock.recv(4096)


def closed(sock: socket.socket) -> bool:
    """Whether the other end closed `sock`: EOF or a reset, within the socket's timeout."""
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def test_the_relay_cuts_every_connection_and_keeps_listening() -> None:
    with echo_server() as port:
        relay = Relay(None, ("127.0.0.1", port), 0)
        relay.start()
        try:
            first = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
            second = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
            assert echoed(first, b"list") == b"list" and echoed(second, b"watch") == b"watch"
            assert relay.cut() == 2
            for sock in (first, second):
                assert closed(sock)
                sock.close()
            again = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
            assert echoed(again, b"relist") == b"relist"  # the proxy can reconnect
            again.close()
        finally:
            relay.stop()


def test_the_event_round_trips_and_holds_no_changes() -> None:
    event = RestartProxy(api_only=True)
    assert event.to_json() == {"kind": "restart-proxy", "api_only": True}
    assert event_from_json(event.to_json()) == event and str(event) == "restart-proxy api-only"
    assert RestartProxy().to_json() == {"kind": "restart-proxy"}  # as before
    state = ClusterState()
    assert event.apply(state) == state
    with pytest.raises(InvalidEvent, match="api_only holds no changes"):
        RestartProxy(
            while_down=(CreateService("web", labels_of({"a": "b"})),), api_only=True
        ).apply(state)


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_it_is_drawn_only_where_the_target_cuts_api_connections(data: Any) -> None:
    state = CreateService("web", labels_of({"app": "web"})).apply(ClusterState())
    generator = GENERATORS["cut_api_connection"]
    assert not generator.applies(state, EventSpace())
    assert not generator.applies(ClusterState(), EventSpace(cuts_api=True))
    space = EventSpace(cuts_api=True)
    assert data.draw(generator.strategy(state, space)) == RestartProxy(api_only=True)


class Runtime:
    def __init__(self) -> None:
        self.cuts = 0

    def cut_api_connections(self) -> int:
        self.cuts += 1
        return 3


def test_the_kube_target_cuts_through_its_runtime_only_under_pods_local(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = KubeTarget(TargetOptions())
    why = cluster.api_cut_unsupported
    assert why is not None and "needs --pods local with --proxy-command" in why
    with pytest.raises(UsageError, match="restart-proxy api_only: cutting the proxy's API"):
        cluster.apply(RestartProxy(api_only=True))
    local = KubeTarget(TargetOptions(pods="local", proxy_command="kube-proxy"))
    assert local.api_cut_unsupported is None
    runtime = Runtime()
    monkeypatch.setattr(local, "runtime", runtime)
    monkeypatch.setattr(local, "_check", lambda: None)
    before = local.state
    local.apply(RestartProxy(api_only=True))
    assert runtime.cuts == 1 and local.api_connections_cut == 3 and local.state == before


@pytest.mark.netns
@pytest.mark.parametrize("mock_api", [{"graceful_pods": True}], indirect=True)
def test_the_standin_reconnects_after_its_api_connections_are_cut(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    """End to end under `--pods local` (root, network namespaces): the stand-in proxy's watches
    go through the relay; after `restart-proxy api-only` cuts them it lists and watches again,
    so the pod added after the cut is reached within the deadline."""
    if os.geteuid() != 0 or shutil.which("iptables-restore") is None:
        pytest.skip("needs root and iptables (network namespaces)")
    command = (
        f"exec {sys.executable} -m harness.kube.standin --kubeconfig {{kubeconfig}}"
        " --hostname-override {node} --proxy-mode iptables"
    )
    target = KubeTarget(TargetOptions(pods="local", proxy_command=command), cluster=cluster)

    def reached(pods: set[str]) -> bool:
        """Whether fresh connections reach exactly `pods` within 10 s (bounded polling)."""
        end = time.monotonic() + 10.0
        while time.monotonic() < end:
            sample = target.send(TrafficRequest("web", count=16, timeout_s=0.5))
            if {b.pod for b in sample.hits()} == pods:
                return True
            time.sleep(0.2)
        return False

    with FakeCluster(mock_api.url, kubelet=False):
        target.open()
        try:
            target.apply(CreateService("web", labels_of({"app": "web"})))
            target.apply(Scale("web", 1))
            assert reached({"web-0"})
            target.apply(RestartProxy(api_only=True))
            cut = target.api_connections_cut
            target.apply(Scale("web", 2))
            assert reached({"web-0", "web-1"}), "the proxy did not see the pod added after the cut"
        finally:
            target.close()
    assert cut >= 2  # at least its Service and EndpointSlice watches
