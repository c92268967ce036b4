"""Builders and assertions shared by the kernel-rule proxy tests (imported by name: pytest puts
this folder on sys.path)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping

from harness.model.endpoints import usable_destinations
from harness.model.objects import (
    Affinity,
    Backend,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Labels,
    Service,
    TrafficPolicy,
)
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.traffic import Reachability

PORT = EndpointPort("http", 8080)
CLIENT = "10.250.0.2"
STATISTIC_STEP = 2.0**-31  # the statistic match's granularity


def in_netns(netns: str, *argv: str, stdin: str | None = None) -> str:
    """Run a command in the test namespace and return its output."""
    done = subprocess.run(
        ["ip", "netns", "exec", netns, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout


def endpoint(
    number: int,
    *,
    ready: bool = True,
    serving: bool | None = None,
    terminating: bool = False,
    node: str = "node-1",
) -> Endpoint:
    """Pod `pod-N` at 10.244.0.N with the given conditions (serving defaults to ready)."""
    return Endpoint(
        address=f"10.244.0.{number}",
        pod=f"pod-{number}",
        uid=f"uid-{number}",
        node=node,
        zone="zone-a",
        ready=ready,
        serving=ready if serving is None else serving,
        terminating=terminating,
    )


def service(
    name: str = "web",
    cluster_ip: str = "10.96.0.10",
    *,
    affinity: bool = False,
    timeout_s: int = 10800,
    local: bool = False,
) -> Service:
    selector: Labels = (("app", name),)
    return Service(
        name,
        cluster_ip,
        selector,
        session_affinity=Affinity.CLIENT_IP if affinity else Affinity.NONE,
        affinity_timeout_s=timeout_s,
        internal_traffic_policy=TrafficPolicy.LOCAL if local else TrafficPolicy.CLUSTER,
    )


def slice_of(svc: Service, endpoints: Iterable[Endpoint]) -> EndpointSlice:
    return EndpointSlice(svc.name, (PORT,), tuple(endpoints), name=f"{svc.name}-0")


def program(proxy: KernelRuleProxy, svc: Service, endpoints: Iterable[Endpoint]) -> EndpointSlice:
    """Feed a Service and its one slice through the contract and sync."""
    endpoint_slice = slice_of(svc, endpoints)
    proxy.on_service_add(svc)
    proxy.on_endpoint_slice_add(endpoint_slice)
    proxy.sync()
    return endpoint_slice


def replace_endpoints(
    proxy: KernelRuleProxy, svc: Service, endpoints: Iterable[Endpoint]
) -> EndpointSlice:
    """Update the Service's slice to `endpoints` and sync."""
    new = slice_of(svc, endpoints)
    proxy.on_endpoint_slice_update(proxy.slices[(svc.name, new.name)], new)
    proxy.sync()
    return new


def expected(svc: Service, endpoints: Iterable[Endpoint]) -> dict[Backend, float]:
    """The model's answer: each usable endpoint with probability 1/n."""
    usable = usable_destinations([slice_of(svc, endpoints)], svc, PORT.name, "node-1")
    return {d.backend: 1.0 / len(usable) for d in usable}


def assert_exact(reach: Reachability, wanted: Mapping[Backend, float]) -> None:
    """Exactly the wanted backends, each within the kernel's rounding (1/2^31 per rule)."""
    assert not reach.rejects, reach
    assert set(reach.probabilities) == set(wanted), reach
    tolerance = STATISTIC_STEP * max(len(wanted), 1)
    for backend, probability in wanted.items():
        assert abs(reach.probabilities[backend] - probability) <= tolerance, reach


def rule_handles(netns: str) -> dict[tuple[str, str], tuple[int, ...]]:
    """Every chain's rule handles (nft numbers each rule anew when it is written): a chain whose
    handles are unchanged was not rewritten. Works for iptables-nft tables too."""
    items = json.loads(in_netns(netns, "nft", "-j", "-a", "list", "ruleset"))["nftables"]
    handles: dict[tuple[str, str], list[int]] = {}
    for item in items:
        if "chain" in item:
            handles.setdefault((item["chain"]["table"], item["chain"]["name"]), [])
        if "rule" in item:
            rule = item["rule"]
            handles.setdefault((rule["table"], rule["chain"]), []).append(rule["handle"])
    return {chain: tuple(numbers) for chain, numbers in handles.items()}
