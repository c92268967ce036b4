"""nginx and haproxy configuration generation: pure, and accepted by the real binaries."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.local.netns import scratch_namespace
from harness.model.objects import (
    Affinity,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Service,
    ServicePort,
    TrafficPolicy,
)
from harness.proxies.haproxy import render_haproxy
from harness.proxies.listeners import Listener, plan_listeners
from harness.proxies.nginx import render_nginx, stream_module


def endpoint(
    n: int,
    *,
    ready: bool = True,
    serving: bool | None = None,
    term: bool = False,
    node: str = "node-1",
) -> Endpoint:
    serving = ready if serving is None else serving
    return Endpoint(f"10.244.0.{n}", f"web-{n}", f"u{n}", node, "zone-a", ready, serving, term)


def service(**fields: object) -> Service:
    base: dict[str, object] = {
        "name": "web",
        "cluster_ip": "10.96.0.10",
        "selector": (("app", "web"),),
        "ports": (ServicePort("http", 80, "http"), ServicePort("admin", 9000, 9000)),
    }
    return Service(**{**base, **fields})  # type: ignore[arg-type]


BOTH_PORTS = (EndpointPort("http", 8080), EndpointPort("admin", 9000))


def plan(
    svc: Service, *endpoints: Endpoint, ports: tuple[EndpointPort, ...] = BOTH_PORTS
) -> tuple[Listener, ...]:
    slices = (EndpointSlice(svc.name, ports, endpoints, name="web-0"),)
    return plan_listeners(
        {svc.name: svc}, lambda name: slices if name == svc.name else (), "node-1"
    )


def backends(listener: Listener) -> list[str]:
    return [d.backend.pod for d in listener.destinations]


def test_one_listener_per_port_with_resolved_target_ports() -> None:
    http, admin = plan(service(), endpoint(1), endpoint(2))
    assert (http.address, http.port, admin.port) == ("10.96.0.10", 80, 9000)
    assert [(d.address, d.port) for d in http.destinations] == [
        ("10.244.0.1", 8080),
        ("10.244.0.2", 8080),
    ]
    assert http.key != admin.key
    assert http.affinity_timeout_s is None


def test_no_usable_endpoint_means_no_listener_so_the_kernel_refuses() -> None:
    assert plan(service()) == ()
    assert plan(service(), endpoint(1, ready=False)) == ()
    assert plan(service(), endpoint(1, ready=False, serving=True, term=False)) == ()


def test_terminating_serving_endpoints_are_the_fallback_only() -> None:
    (listener, _) = plan(service(), endpoint(1, ready=False, serving=True, term=True))
    assert backends(listener) == ["web-1"]
    (listener, _) = plan(service(), endpoint(1), endpoint(2, ready=False, serving=True, term=True))
    assert backends(listener) == ["web-1"]


def test_internal_traffic_policy_local_keeps_this_nodes_endpoints() -> None:
    local = service(internal_traffic_policy=TrafficPolicy.LOCAL)
    (listener, _) = plan(local, endpoint(1, node="node-2"), endpoint(2))
    assert backends(listener) == ["web-2"]
    assert plan(local, endpoint(1, node="node-2")) == ()


def test_a_port_the_slice_lacks_gets_no_listener_and_udp_is_skipped() -> None:
    (listener,) = plan(service(), endpoint(1), ports=(EndpointPort("http", 8080),))
    assert listener.port == 80
    udp = service(ports=(ServicePort("dns", 53, 53, "UDP"),))
    assert plan(udp, endpoint(1), ports=(EndpointPort("dns", 53, "UDP"),)) == ()


def test_client_ip_affinity_carries_its_timeout() -> None:
    sticky = service(session_affinity=Affinity.CLIENT_IP, affinity_timeout_s=30)
    assert {listener.affinity_timeout_s for listener in plan(sticky, endpoint(1))} == {30}


LISTENERS = plan(
    service(session_affinity=Affinity.CLIENT_IP, affinity_timeout_s=30), endpoint(1), endpoint(2)
) + plan(service(name="api", cluster_ip="10.96.0.11"), endpoint(3))


def test_nginx_config() -> None:
    text = render_nginx(LISTENERS, Path("/w"), Path("/m/ngx_stream_module.so"))
    assert "load_module /m/ngx_stream_module.so;" in text
    assert text.count("listen ") == 4
    assert "listen 10.96.0.10:80;" in text and "listen 10.96.0.11:9000;" in text
    assert text.count("hash $remote_addr consistent;") == 2  # only the sticky Service
    assert "server 10.244.0.1:8080 max_fails=0;" in text
    assert "server 10.244.0.2:9000 max_fails=0;" in text
    assert "pid /w/nginx.pid;" in text and "daemon off;" in text
    assert "load_module" not in render_nginx((), Path("/w"), None)


def test_haproxy_config() -> None:
    text = render_haproxy(LISTENERS, Path("/w"))
    assert text.count("\nlisten ") == 4
    assert text.count("balance roundrobin") == 4
    assert "bind 10.96.0.10:80" in text and "bind 10.96.0.11:9000" in text
    assert text.count("stick-table type ip size 100k expire 30s") == 2
    assert text.count("stick on src") == 2
    assert "server web_1_u1 10.244.0.1:8080" in text
    assert "bind unix@/w/idle.sock" in text  # haproxy refuses to run without any listener


def test_rendering_is_deterministic() -> None:
    assert render_haproxy(LISTENERS, Path("/w")) == render_haproxy(LISTENERS, Path("/w"))
    assert render_nginx(LISTENERS, Path("/w"), None) == render_nginx(LISTENERS, Path("/w"), None)


@pytest.mark.netns
@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
@pytest.mark.parametrize("listeners", [(), LISTENERS])
def test_nginx_accepts_the_config(tmp_path: Path, listeners: tuple[Listener, ...]) -> None:
    """`nginx -t` binds the listen addresses, so it runs in a namespace where the VIPs are local."""
    config = tmp_path / "nginx.conf"
    config.write_text(render_nginx(listeners, tmp_path, stream_module()))
    route = ["route", "add", "local", "10.96.0.0/16", "dev", "lo"]
    check = ["nginx", "-t", "-q", "-c", str(config), "-p", f"{tmp_path}/", "-e", f"{tmp_path}/e"]
    with scratch_namespace() as netns:
        subprocess.run(["ip", "-n", netns, *route], check=True, timeout=10)
        result = subprocess.run(
            ["ip", "netns", "exec", netns, *check], capture_output=True, text=True, timeout=10
        )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
@pytest.mark.parametrize("listeners", [(), LISTENERS])
def test_haproxy_accepts_the_config(tmp_path: Path, listeners: tuple[Listener, ...]) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(render_haproxy(listeners, tmp_path))
    result = subprocess.run(
        ["haproxy", "-c", "-q", "-f", str(config)], capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_nginx_workers_keep_the_run_prefix_for_harness_clean() -> None:
    assert "env HARNESS_RUN_PREFIX;" in render_nginx((), Path("/w"), None)
