"""nginx, haproxy and the example candidate proxy really running in a namespace.

Each test makes its own node namespace ("hkt" + hex) with backends on 127.0.0.N inside it,
starts the proxy there, and connects to the Service VIP from inside the namespace. Everything is
removed in `finally` blocks; the last test checks that nothing is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.errors import EnvironmentProblem
from harness.events import CreateService, Probe, Scale, Wait
from harness.local.cleanup import clean
from harness.local.netns import scratch_namespace
from harness.model.objects import (
    Affinity,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Service,
    ServicePort,
    labels_of,
)
from harness.proxies.base import NodeContext, Proxy
from harness.proxies.external import ExternalProxy
from harness.proxies.failure import ProxyFailure
from harness.proxies.haproxy import HaproxyProxy
from harness.proxies.nginx import NginxProxy
from harness.proxies.procfs import children, is_running
from harness.runner import RunConfig, Runner
from harness.targets.local import LocalTarget
from tests.plugins.netns import NameServers, ask

pytestmark = pytest.mark.netns

EXAMPLE = Path(__file__).parents[2] / "examples" / "candidate-proxy" / "proxy.py"
VIP = "10.96.0.10"
PROXIES: dict[str, Callable[[], Proxy]] = {
    "nginx": NginxProxy,
    "haproxy": HaproxyProxy,
    "example": lambda: ExternalProxy(f"{sys.executable} {EXAMPLE}"),
}


def web(affinity: Affinity = Affinity.NONE, timeout_s: int = 10800) -> Service:
    return Service(
        "web",
        VIP,
        (("app", "web"),),
        ports=(ServicePort("http", 80, 8080),),
        session_affinity=affinity,
        affinity_timeout_s=timeout_s,
    )


def web_slice(*ready: int, unready: tuple[int, ...] = ()) -> EndpointSlice:
    endpoints = tuple(
        Endpoint(f"127.0.0.{n}", f"web-{n}", f"u{n}", "node-1", "zone-a", ok, ok, False)
        for n, ok in [*((n, True) for n in ready), *((n, False) for n in unready)]
    )
    return EndpointSlice("web", (EndpointPort("http", 8080),), endpoints, name="web-0")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A run directory under /tmp named with the test prefix: the balancers' unprivileged user
    must be able to reach their workdir (pytest's own tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="hkt") as directory:
        yield Path(directory)


@contextmanager
def running(kind: str, tmp_path: Path) -> Iterator[tuple[Proxy, str]]:
    with scratch_namespace() as netns:
        servers = NameServers(netns, {f"web-{n}": (f"127.0.0.{n}", 8080) for n in (2, 3, 4)})
        proxy = PROXIES[kind]()
        started: set[int] = set()
        try:
            proxy.start(NodeContext("node-1", netns, "hkt", tmp_path / "work"))
            yield proxy, netns
        finally:
            process = getattr(proxy, "_process", None)
            if process is not None and process.alive():
                started = {process.pid, *children(process.pid)}
            proxy.stop()
            servers.close()
        assert not [pid for pid in started if is_running(pid)], "stop() left processes"
        assert not list((tmp_path / "work").iterdir()), "stop() left files in the workdir"
        routes = subprocess.run(
            ["ip", "-n", netns, "route", "show", "table", "local", "10.96.0.0/16"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert routes.stdout.strip() == "", "stop() left the VIP route"


def answers(netns: str, count: int) -> list[str]:
    return [ask(netns, VIP, 80) for _ in range(count)]


@pytest.mark.parametrize("kind", PROXIES)
def test_balances_over_ready_endpoints_and_rejects_without_any(kind: str, tmp_path: Path) -> None:
    with running(kind, tmp_path) as (proxy, netns):
        assert answers(netns, 1) == ["refused"]
        proxy.on_service_add(web())
        proxy.on_endpoint_slice_add(web_slice(2, 3, unready=(4,)))
        proxy.sync()
        seen = answers(netns, 20)
        assert set(seen) == {"web-2", "web-3"}
        if kind != "example":  # round robin: exactly equal counts
            assert seen.count("web-2") == seen.count("web-3") == 10
        proxy.on_endpoint_slice_update(web_slice(2, 3, unready=(4,)), web_slice(unready=(4,)))
        proxy.sync()
        assert answers(netns, 3) == ["refused"] * 3


@pytest.mark.parametrize("kind", PROXIES)
def test_sync_returns_once_new_connections_see_the_change(kind: str, tmp_path: Path) -> None:
    with running(kind, tmp_path) as (proxy, netns):
        proxy.on_service_add(web())
        proxy.on_endpoint_slice_add(web_slice(2))
        proxy.sync()
        for old, new in [(2, 3), (3, 4), (4, 2)]:
            proxy.on_endpoint_slice_update(web_slice(old), web_slice(new))
            proxy.sync()
            assert answers(netns, 10) == [f"web-{new}"] * 10
        proxy.on_service_delete(web())
        proxy.on_endpoint_slice_delete(web_slice(2))
        proxy.sync()
        assert answers(netns, 2) == ["refused"] * 2


@pytest.mark.parametrize("kind", PROXIES)
def test_client_ip_affinity_keeps_a_client_on_one_backend(kind: str, tmp_path: Path) -> None:
    with running(kind, tmp_path) as (proxy, netns):
        proxy.on_service_add(web(Affinity.CLIENT_IP, 60))
        proxy.on_endpoint_slice_add(web_slice(2, 3, 4))
        proxy.sync()
        assert len(set(answers(netns, 15))) == 1


def sticky_then_scaled(kind: str, tmp_path: Path) -> list[str]:
    """A client stuck to web-3, then a reload for another Service and one that adds web-2 and
    web-4 (web-2 sorts first): where the client's next connections go."""
    api = Service("api", "10.96.0.11", (("app", "api"),), ports=(ServicePort("http", 80, 8080),))
    with running(kind, tmp_path) as (proxy, netns):
        proxy.on_service_add(web(Affinity.CLIENT_IP, 60))
        proxy.on_endpoint_slice_add(web_slice(3))
        proxy.sync()
        assert answers(netns, 2) == ["web-3"] * 2
        proxy.on_service_add(api)
        proxy.sync()
        assert answers(netns, 5) == ["web-3"] * 5
        proxy.on_endpoint_slice_update(web_slice(3), web_slice(2, 3, 4))
        proxy.sync()
        return answers(netns, 10)


def test_affinity_survives_reloads_and_new_endpoints() -> None:
    with tempfile.TemporaryDirectory(prefix="hkt") as directory:
        assert sticky_then_scaled("example", Path(directory)) == ["web-3"] * 10


def test_haproxy_forgets_affinity_on_reload_as_documented() -> None:
    """docs/candidate-proxy.md: the stick table lives in the worker that a reload replaces."""
    with tempfile.TemporaryDirectory(prefix="hkt") as directory:
        assert sticky_then_scaled("haproxy", Path(directory)) == ["web-2"] * 10


@pytest.mark.parametrize("kind", PROXIES)
def test_a_restarted_proxy_programs_what_it_knew(kind: str, tmp_path: Path) -> None:
    with running(kind, tmp_path) as (proxy, netns):
        proxy.on_service_add(web())
        proxy.on_endpoint_slice_add(web_slice(3))
        proxy.sync()
        proxy.stop()
        proxy.start(NodeContext("node-1", netns, "hkt", tmp_path / "work"))
        proxy.sync()
        assert answers(netns, 3) == ["web-3"] * 3


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_a_dead_daemon_is_a_proxy_failure(kind: str, tmp_path: Path) -> None:
    with running(kind, tmp_path) as (proxy, _):
        assert isinstance(proxy, NginxProxy | HaproxyProxy)
        master = proxy._process.pid if proxy._process else 0
        for worker in children(master):
            os.kill(worker, signal.SIGKILL)
        os.kill(master, signal.SIGKILL)
        proxy.on_service_add(web())
        proxy.on_endpoint_slice_add(web_slice(2))
        with pytest.raises(ProxyFailure, match=f"proxy '{kind}'"):
            proxy.sync()


@pytest.mark.parametrize(("kind", "moves"), [("haproxy", True), ("nginx", False)])
def test_affinity_timeout(kind: str, moves: bool, tmp_path: Path) -> None:
    """HAProxy's stick table expires after `timeoutSeconds`; nginx's hash never does
    (docs/candidate-proxy.md, "Third-party load balancers"), which fails `affinity`
    (`test_affinity_that_never_expires_fails_the_suite`)."""
    with running(kind, tmp_path) as (proxy, netns):
        proxy.on_service_add(web(Affinity.CLIENT_IP, 1))
        proxy.on_endpoint_slice_add(web_slice(2, 3))
        proxy.sync()
        (stuck,) = set(answers(netns, 5))
        time.sleep(1.5)
        after = set(answers(netns, 6))
        assert (after != {stuck}) == moves, after


IDLE_PAST_TIMEOUT = [
    CreateService(
        "svc-a",
        labels_of({"app": "web"}),
        session_affinity=Affinity.CLIENT_IP,
        affinity_timeout_s=1,
    ),
    Scale("web", 3),
    Probe("svc-a", many_clients=True),
    Wait(1.75),
    Probe("svc-a", many_clients=True),
]
"""Many clients stick to their pods, stay idle past a 1 s timeout, and come back: the shrunk
counterexample of `harness run --target local:nginx --profile quick --seed 1`
(docs/candidate-proxy.md), with 3 endpoints instead of 7."""


@pytest.mark.parametrize(("kind", "fails"), [("nginx", True), ("example", False)])
def test_affinity_that_never_expires_fails_the_suite(kind: str, fails: bool) -> None:
    """docs/candidate-proxy.md, "What the suite found": nginx's consistent hash ignores
    `timeoutSeconds`, so every idle client returns to its old pod and `affinity` fails at the
    last probe; the example proxy's affinity expires, and the same sequence passes."""
    target = LocalTarget(PROXIES[kind])
    target.open()
    try:
        runner = Runner(target, RunConfig(deadline_s=5.0))
        runner.reset()
        steps = runner.run(IDLE_PAST_TIMEOUT)
    finally:
        target.close()
    assert clean(target.prefix, force=True) == []
    failures = [
        (index, v.property, v.message)
        for index, step in enumerate(steps, 1)
        for v in step.failures()
    ]
    if fails:
        ((index, prop, message),) = failures
        assert (index, prop) == (5, "affinity") and "never expires" in message, message
    else:
        assert failures == []
        affinity = [v for v in steps[-1].verdicts if v.property == "affinity"]
        assert any(v.evidence.get("expiry_judged") for v in affinity), affinity


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_a_missing_daemon_is_an_environment_problem(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    proxy = PROXIES[kind]()
    with pytest.raises(EnvironmentProblem, match="apt-get install"):
        proxy.start(NodeContext("node-1", "hkt-unused", "hkt", tmp_path / "work"))
    proxy.stop()
