"""The kernel-rule proxies on the local cluster: real pods, real packets, and the rule oracle
agreeing with both (integration: about 2 s per proxy)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator

import pytest

from harness.events import CreateService, Scale, SetAffinity, SetReady
from harness.local.cleanup import clean
from harness.local.names import netns_path, new_prefix
from harness.local.netns import entered, in_thread
from harness.model.endpoints import derive_slices, usable_destinations
from harness.model.objects import Affinity, Backend, labels_of
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import DropEmptyProxy, NeverRemovesProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.conntrack import ConntrackCleaner
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.targets.local import LocalTarget
from harness.traffic import ErrorKind, TrafficRequest

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]
WEB = labels_of({"app": "web"})
OpenTarget = Callable[[type[KernelRuleProxy]], LocalTarget]


@pytest.fixture
def open_target() -> Iterator[OpenTarget]:
    """Opens a local target around a proxy class; closes it and proves nothing was left."""
    prefix, targets = new_prefix(), list[LocalTarget]()

    def open_with(cls: type[KernelRuleProxy]) -> LocalTarget:
        target = LocalTarget(cls, prefix=prefix)
        targets.append(target)
        target.open()
        return target

    try:
        yield open_with
    finally:
        for target in targets:
            target.close()
        assert clean(prefix, force=True) == []  # the root namespace: tests/conftest.py


def usable(target: LocalTarget, service: str) -> set[Backend]:
    slices = derive_slices(target.state, service)
    return {d.backend for d in usable_destinations(slices, target.state.services[service], "http")}


@pytest.mark.parametrize("cls", [IptablesProxy, NftablesProxy], ids=lambda cls: cls.name)
def test_traffic_and_oracle_agree_with_the_model(
    cls: type[KernelRuleProxy], open_target: OpenTarget
) -> None:
    target = open_target(cls)
    target.apply(CreateService("web", WEB))
    target.apply(Scale("web", 3))
    reach = target.reachability("web", "http", "client-1")
    assert set(reach.probabilities) == usable(target, "web") and len(reach.probabilities) == 3
    assert all(abs(p - 1 / 3) < 2**-29 for p in reach.probabilities.values())
    sample = target.send(TrafficRequest("web", count=60))
    assert not sample.errors() and set(sample.hits()) == usable(target, "web")

    target.apply(SetReady("web-0", False))
    assert set(target.reachability("web", "http", "client-1").probabilities) == usable(
        target, "web"
    )
    sample = target.send(TrafficRequest("web", count=30))
    assert not sample.errors() and set(sample.hits()) == usable(target, "web")

    target.apply(SetAffinity("web", Affinity.CLIENT_IP, 60))
    sample = target.send(TrafficRequest("web", count=15))
    assert len(sample.hits()) == 1 and not sample.errors()

    target.apply(CreateService("empty", labels_of({"app": "none"})))
    assert target.reachability("empty", "http", "client-1").rejects
    # more than the ICMP rate limit's burst (about ten): every one must still be refused
    refused = target.send(TrafficRequest("empty", count=25, timeout_s=0.5))
    assert refused.errors() == {ErrorKind.REFUSED: 25}


def test_never_removes_is_caught_on_real_packets(open_target: OpenTarget) -> None:
    target = open_target(NeverRemovesProxy)
    target.apply(CreateService("web", WEB))
    target.apply(Scale("web", 2))
    target.apply(SetReady("web-0", False))
    hits = target.send(TrafficRequest("web", count=40)).hits()
    assert any(backend.pod == "web-0" for backend in hits)  # an unready pod still gets traffic


def test_drop_empty_is_caught_on_real_packets(open_target: OpenTarget) -> None:
    target = open_target(DropEmptyProxy)
    target.apply(CreateService("empty", labels_of({"app": "none"})))
    sample = target.send(TrafficRequest("empty", count=2, timeout_s=0.5))
    assert sample.errors() == {ErrorKind.TIMEOUT: 2}  # not refused: clients hang


def kept_connection(target: LocalTarget, service: str) -> socket.socket:
    """A TCP connection from client-1 to the Service's VIP, made inside the client namespace."""
    assert target.cluster is not None
    client = target.cluster.clients["client-1"].netns
    address = (target.state.services[service].cluster_ip, 80)

    def connect() -> socket.socket:
        with entered(netns_path(client)):
            return socket.create_connection(address, timeout=2)

    return in_thread(connect)


def ask(connection: socket.socket) -> str:
    connection.sendall(b"GET / HTTP/1.1\r\nHost: service\r\n\r\n")
    return connection.recv(4096).decode(errors="replace")


@pytest.mark.parametrize("clears", [True, False], ids=["cleared", "control-not-cleared"])
@pytest.mark.parametrize("cls", [IptablesProxy, NftablesProxy], ids=lambda cls: cls.name)
def test_an_open_connection_to_a_removed_endpoint_is_reset(
    cls: type[KernelRuleProxy],
    clears: bool,
    open_target: OpenTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not clears:
        monkeypatch.setattr(ConntrackCleaner, "clear", lambda self, flows: None)
    target = open_target(cls)
    target.apply(CreateService("web", WEB))
    target.apply(Scale("web", 2))
    with kept_connection(target, "web") as connection:
        pod = "web-0" if "web-0" in ask(connection) else "web-1"
        target.apply(SetReady(pod, False))
        if clears:
            with pytest.raises(ConnectionResetError):
                ask(connection)
        else:
            assert pod in ask(connection)  # the entry keeps the old pod: what clearing prevents
