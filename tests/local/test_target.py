"""The local target's contract: what it hands a proxy, what it publishes, what it leaves behind."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from harness.errors import EnvironmentProblem, UsageError
from harness.events import CreateService, DeleteService, Scale, SetReady, SetSelector
from harness.model.endpoints import derive_slices
from harness.model.objects import EndpointSlice, Service, labels_of
from harness.proxies.base import NodeContext
from harness.proxies.userspace import UserspaceProxy
from harness.registry import TargetOptions
from harness.targets import local
from harness.targets.base import reads_rules
from harness.targets.local import LocalTarget
from harness.traffic import Reachability, TrafficRequest
from tests.hostsafety import RootGuard
from tests.local.conftest import needs_root

WEB = labels_of({"app": "web"})


class RecordingProxy:
    """A test-only proxy, not built on TrackingProxy: programs nothing, records every call."""

    name: ClassVar[str] = "recording"
    description: ClassVar[str] = "records calls"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.started: NodeContext | None = None
        self.stopped = 0

    def start(self, node: NodeContext) -> None:
        self.started = node

    def on_service_add(self, service: Service) -> None:
        self.calls.append(("service-add", service.name))

    def on_service_update(self, old: Service, new: Service) -> None:
        assert old.name == new.name and old != new
        self.calls.append(("service-update", new.name))

    def on_service_delete(self, service: Service) -> None:
        self.calls.append(("service-delete", service.name))

    def on_endpoint_slice_add(self, endpoint_slice: EndpointSlice) -> None:
        self.calls.append(("slice-add", endpoint_slice.name))

    def on_endpoint_slice_update(self, old: EndpointSlice, new: EndpointSlice) -> None:
        assert old.name == new.name and old != new
        self.calls.append(("slice-update", new.name))

    def on_endpoint_slice_delete(self, endpoint_slice: EndpointSlice) -> None:
        self.calls.append(("slice-delete", endpoint_slice.name))

    def sync(self) -> None:
        self.calls.append(("sync", ""))

    def stop(self) -> None:
        self.stopped += 1


class ReadingProxy(RecordingProxy):
    def reachability(self, service: Service, port_name: str, client_ip: str) -> Reachability:
        return Reachability(rejects=True, detail=f"{service.name}:{port_name} from {client_ip}")


def test_without_root_the_target_says_so_and_offers_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local.os, "geteuid", lambda: 1000)
    target = LocalTarget(RecordingProxy, prefix="hk0dead")
    with pytest.raises(EnvironmentProblem, match="local:loopback") as raised:
        target.open()
    assert "\n" not in str(raised.value)


def test_from_spec_picks_the_proxy_and_the_rule_oracle_only_when_the_proxy_reads_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxies: dict[str, Any] = {"plain": RecordingProxy, "reading": ReadingProxy}
    monkeypatch.setattr(local, "load_proxy", proxies.__getitem__)
    plain = LocalTarget.from_spec("plain", TargetOptions(prefix="hk0beef"))
    reading = LocalTarget.from_spec("reading", TargetOptions())
    assert not reads_rules(plain) and reads_rules(reading)
    with pytest.raises(UsageError, match="cannot show its programmed rules"):
        plain.reachability("web", "http", "client-1")
    assert plain.prefix == "hk0beef" and plain.name == "local:recording"
    with pytest.raises(UsageError, match="five hex digits"):
        LocalTarget.from_spec("plain", TargetOptions(prefix="bad"))


@pytest.mark.netns
@needs_root
def test_the_proxy_is_fed_like_a_watch_and_slices_are_the_models(prefix: str) -> None:
    proxy = RecordingProxy()
    target = LocalTarget(lambda: proxy, prefix=prefix)
    target.open()
    try:
        assert proxy.started is not None and proxy.started.netns == f"{prefix}-node"
        assert proxy.started.node == "node-1" and proxy.started.workdir.is_dir()
        target.apply(CreateService("web", WEB))
        target.apply(Scale("web", 2))
        target.apply(SetReady("web-0", False))
        target.apply(SetSelector("web", labels_of({"app": "none"})))
        assert target.endpoint_slices("web") == derive_slices(target.state, "web")
        target.apply(DeleteService("web"))
        assert target.endpoint_slices("web") == ()
    finally:
        target.close()
    assert proxy.calls == [
        ("service-add", "web"),
        ("slice-add", "web-0"),
        ("sync", ""),
        ("slice-update", "web-0"),  # two pods
        ("sync", ""),
        ("slice-update", "web-0"),  # web-0 not ready
        ("sync", ""),
        ("service-update", "web"),
        ("slice-update", "web-0"),  # selects nothing: one empty slice
        ("sync", ""),
        ("slice-delete", "web-0"),
        ("service-delete", "web"),
        ("sync", ""),
    ]
    assert proxy.stopped == 1


@pytest.mark.netns
@needs_root
def test_a_whole_run_leaves_the_root_namespace_as_it_was(prefix: str) -> None:
    root = RootGuard("an open target")
    target = LocalTarget(UserspaceProxy, prefix=prefix)
    target.open()
    try:
        target.apply(CreateService("web", WEB))
        target.apply(Scale("web", 3))
        assert len(target.send(TrafficRequest("web", count=6)).hits()) == 3
        root.check(own={prefix})  # while open; after the test, by tests/conftest.py
        target.reset()
        assert target.state.services == {} and target.stats()["pods"] == 0
        target.apply(CreateService("web", WEB))  # a reset target starts like a new one
        assert target.state.services["web"].cluster_ip == "10.96.0.10"
    finally:
        target.close()
        target.close()  # twice is harmless


@pytest.mark.netns
@needs_root
def test_bad_requests_are_usage_errors(userspace_target: LocalTarget) -> None:
    with pytest.raises(UsageError, match="was ever created"):
        userspace_target.send(TrafficRequest("nothing"))
    userspace_target.apply(CreateService("web", WEB))
    with pytest.raises(UsageError, match="unknown client"):
        userspace_target.send(TrafficRequest("web", client="client-9"))
    with pytest.raises(UsageError, match="no port named"):
        userspace_target.send(TrafficRequest("web", port="grpc"))
