"""The kube target's rule oracle: a node's real rules read back, recognised and traced.

- Without root: layouts recognised from tool output, and unknown ones (another proxy, nothing,
  missing tools) reported as unsupported, never as a violation.
- With root, in prefixed throw-away namespaces: the harness's own iptables and nftables proxies
  (kube-proxy's layouts) programmed there and read back through `nsenter`; rules in real
  kube-proxy's own shape (its NodePort dispatch rules included) restored there; exact
  probabilities, REJECT for no endpoints, DROP for endpoints none of which is local.
- With root and the mock API server: `KubeTarget.reachability` in `--pods local` reading the node
  namespace it made, and `exact-balance` catching a proxy that leaves a removed endpoint behind.
- The mock API server alone: `--read-node-rules` reader pods (hostNetwork, privileged, only when
  allowed, named and labelled with the run, removed at close) and their exec'd output traced.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakecluster import FakeCluster, eventually, make_nodes
from mockapi import MockApiServer

from harness.checks.endpoints import check_endpoints
from harness.checks.rules import check_exact_balance
from harness.cli import build_parser, target_options
from harness.clock import RealClock
from harness.conformance import applicable
from harness.errors import EnvironmentProblem, UsageError
from harness.events import CreatePod, CreateService, DeletePod, SetReady
from harness.kube.api import Cluster
from harness.kube.node_rules import (
    Layout,
    UnsupportedRules,
    backend_lookup,
    detect,
    netns_reader,
    wait_for_layout,
)
from harness.kube.objects import (
    DEFAULT_READER_IMAGE,
    MANAGED_BY_KEY,
    POD_SECURITY_ENFORCE,
    RUN_LABEL,
)
from harness.local.netns import scratch_namespace
from harness.model.endpoints import derive_slices, expect
from harness.model.objects import (
    Backend,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Pod,
    Service,
    ServicePort,
    TrafficPolicy,
    labels_of,
)
from harness.proxies.base import NodeContext
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import NeverRemovesProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.proxies.rules.tracing import Packet
from harness.registry import TargetOptions
from harness.targets.kube import KubeTarget

WEB = labels_of({"app": "web"})
PORT = ServicePort()
CLIENT = "10.250.0.2"
VIP, EMPTY_VIP, LOCAL_VIP = "10.96.0.10", "10.96.0.11", "10.96.0.12"
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("iptables-save") is None,
    reason="needs root, nft and iptables (network namespaces)",
)


def answers(**outputs: str) -> Callable[[Sequence[str]], str]:
    """A `Run` answering each tool (by its name) with fixed output; other tools are missing."""

    def run(argv: Sequence[str]) -> str:
        if argv[0] not in outputs:
            raise EnvironmentProblem(f"`{argv[0]}` is not installed")
        return outputs[argv[0]]

    return run


# -- real kube-proxy's own shapes (pkg/proxy/iptables/proxier.go, pkg/proxy/nftables/proxier.go),
#    with the rules it writes for every node: NodePort dispatch, firewall and forward chains ---
def kube_proxy_iptables(vip: str, endpoints: Sequence[str], empty_vip: str) -> str:
    """An iptables-save dump in kube-proxy v1.24's layout: one Service with `endpoints` (pod IPs
    on port 8080), one without endpoints, and the node-wide chains."""
    n = len(endpoints)
    svc = "KUBE-SVC-TCOU7JCQXEZGVUNU"
    nat = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":KUBE-MARK-DROP - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-SERVICES - [0:0]",
        f":{svc} - [0:0]",
        *(f":KUBE-SEP-{i} - [0:0]" for i in range(n)),
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000",
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT"'
        " -j MASQUERADE --random-fully",
        f'-A KUBE-SERVICES -d {vip}/32 -p tcp -m comment --comment "ns/web:http cluster IP"'
        f" -m tcp --dport 80 -j {svc}",
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be'
        ' the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
        f"-A {svc} ! -s 10.244.0.0/16 -d {vip}/32 -p tcp -m comment --comment"
        ' "ns/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ',
    ]
    for i, address in enumerate(endpoints):
        chance = (
            f" -m statistic --mode random --probability {1 / (n - i):.11f}" if i < n - 1 else ""
        )
        nat.append(
            f'-A {svc} -m comment --comment "ns/web:http -> {address}:8080"{chance} -j KUBE-SEP-{i}'
        )
        nat.append(
            f'-A KUBE-SEP-{i} -s {address}/32 -m comment --comment "ns/web:http" -j KUBE-MARK-MASQ'
        )
        nat.append(
            f'-A KUBE-SEP-{i} -p tcp -m comment --comment "ns/web:http" -m tcp'
            f" -j DNAT --to-destination {address}:8080"
        )
    nat.append("COMMIT")
    filter_table = [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":KUBE-EXTERNAL-SERVICES - [0:0]",
        ":KUBE-FORWARD - [0:0]",
        ":KUBE-PROXY-FIREWALL - [0:0]",
        ":KUBE-SERVICES - [0:0]",
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer'
        ' firewall" -j KUBE-PROXY-FIREWALL',
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals"'
        " -j KUBE-SERVICES",
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible'
        ' service portals" -j KUBE-EXTERNAL-SERVICES',
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark'
        " 0x4000/0x4000 -j ACCEPT",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack'
        " --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f'-A KUBE-SERVICES -d {empty_vip}/32 -p tcp -m comment --comment "ns/empty:http has no'
        ' endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable',
        "COMMIT",
    ]
    return "\n".join(nat + filter_table) + "\n"


def kube_proxy_nft(vip: str, endpoints: Sequence[str], empty_vip: str, local_vip: str) -> str:
    """`nft -f` input in kube-proxy v1.30's nftables layout (table `ip kube-proxy`): a Service
    with `endpoints`, one without any (reject), one whose endpoints are all on other nodes under
    internalTrafficPolicy Local (drop), the NodePort dispatch and the ClusterIP checks."""
    names = [f"endpoint-{i:08}-ns/web/tcp/http__{a}/8080" for i, a in enumerate(endpoints)]
    gotos = ", ".join(f"{i} : goto {name}" for i, name in enumerate(names))
    chains = "\n".join(
        f"  chain {name} {{\n    ip saddr {a} jump mark-for-masquerade\n"
        f"    meta l4proto tcp dnat to {a}:8080\n  }}"
        for name, a in zip(names, endpoints, strict=True)
    )
    return f"""table ip kube-proxy {{
  comment "rules for kube-proxy"
  set cluster-ips {{ type ipv4_addr ; elements = {{ {vip}, {empty_vip}, {local_vip} }} }}
  set nodeport-ips {{ type ipv4_addr ; }}
  map no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict ;
    elements = {{ {empty_vip} . tcp . 80 : goto reject-chain, {local_vip} . tcp . 80 : drop }} }}
  map no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; }}
  map firewall-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}
  map service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ;
    elements = {{ {vip} . tcp . 80 : goto service-ULMVA6XW-ns/web/tcp/http }} }}
  map service-nodeports {{ type inet_proto . inet_service : verdict ; }}
  chain filter-prerouting {{
    type filter hook prerouting priority dstnat - 10 ;
    ct state new jump firewall-check
  }}
  chain filter-forward {{
    type filter hook forward priority -110 ;
    ct state new jump service-endpoints-check
    ct state new jump cluster-ips-check
  }}
  chain nat-prerouting {{
    type nat hook prerouting priority dstnat ;
    jump services
  }}
  chain filter-input {{
    type filter hook input priority -110 ;
    ct state new jump nodeport-endpoints-check
    ct state new jump service-endpoints-check
  }}
  chain nat-postrouting {{
    type nat hook postrouting priority srcnat ;
    jump masquerading
  }}
  chain cluster-ips-check {{
    ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
    ip daddr {{ 10.96.0.0/16 }} drop comment "Drop traffic to unallocated ClusterIPs"
  }}
  chain firewall-check {{
    ip daddr . meta l4proto . th dport vmap @firewall-ips
  }}
  chain nodeport-endpoints-check {{
    fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports
  }}
  chain service-endpoints-check {{
    ip daddr . meta l4proto . th dport vmap @no-endpoint-services
  }}
  chain services {{
    ip daddr . meta l4proto . th dport vmap @service-ips
    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
  }}
  chain masquerading {{
    meta mark & 0x4000 == 0 return
    meta mark set meta mark ^ 0x4000
    masquerade fully-random
  }}
  chain mark-for-masquerade {{
    meta mark set meta mark | 0x4000
  }}
  chain reject-chain {{
    reject
  }}
  chain service-ULMVA6XW-ns/web/tcp/http {{
    ip daddr {vip} tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
    numgen random mod {len(endpoints)} vmap {{ {gotos} }}
  }}
{chains}
}}
"""


# -- without root ---------------------------------------------------------------------------------
def test_nothing_recognisable_is_unsupported_with_its_reason() -> None:
    nginx_node = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j ACCEPT\nCOMMIT\n"
    with pytest.raises(UnsupportedRules, match="not kube-proxy's iptables or nftables layout"):
        detect(answers(**{"nft": '{"nftables": []}', "iptables-save": nginx_node}), "node-x")
    with pytest.raises(UnsupportedRules, match="is not installed"):
        detect(answers(), "node-x")  # neither tool: the first missing one is named


def test_layouts_are_recognised_from_the_tools_output() -> None:
    dump = kube_proxy_iptables(VIP, ["10.244.0.2"], EMPTY_VIP)
    found = detect(answers(**{"iptables-legacy-save": dump, "iptables-save": ""}), "node-x")
    assert found.layout is Layout.IPTABLES
    assert found.rules.description == "iptables-legacy-save on node-x"


def test_a_layout_the_tracer_cannot_evaluate_is_unsupported_before_the_run() -> None:
    dump = (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\n"
        "-A KUBE-SERVICES -m owner --uid-owner 0 -j ACCEPT\nCOMMIT\n"
    )
    with pytest.raises(UnsupportedRules, match="cannot be traced: match -m owner"):
        wait_for_layout(answers(**{"iptables-save": dump}), "node-x", RealClock(), 0.0)


def test_backends_are_named_from_the_slices_then_from_every_known_pod() -> None:
    listed = Endpoint("10.244.0.2", "web-a", "u1", "node-1", "zone-a", True, True, False)
    slices = [EndpointSlice("web", (EndpointPort("http", 8080),), (listed,))]
    gone_from_slices = Pod("web-b", "u2", "10.244.0.3", WEB)
    lookup = backend_lookup(slices, PORT, [(gone_from_slices, gone_from_slices.ip)])
    assert lookup("10.244.0.2", 8080) == Backend("web-a", "u1")
    assert lookup("10.244.0.3", 8080) == Backend("web-b", "u2")
    assert lookup("10.244.0.3", 9090) == Backend("?", "10.244.0.3:9090")  # wrong port: unknown


def test_read_node_rules_is_an_option_of_clusters_with_kubelets_only() -> None:
    parser = build_parser()
    given = parser.parse_args(["run", "--target", "kube", "--read-node-rules"])
    assert target_options(given, "kube").read_node_rules == DEFAULT_READER_IMAGE
    given = parser.parse_args(["run", "--target", "kube", "--read-node-rules", "my/image:2"])
    assert target_options(given, "kube").read_node_rules == "my/image:2"
    assert (
        target_options(parser.parse_args(["run", "--target", "kube"]), "kube").read_node_rules
        is None
    )
    with pytest.raises(UsageError, match="--read-node-rules is for --target kube"):
        target_options(
            parser.parse_args(["run", "--target", "local", "--read-node-rules"]), "local"
        )
    with pytest.raises(UsageError, match="--read-node-rules is for --pods cluster"):
        KubeTarget(TargetOptions(pods="local", read_node_rules="my/image:2"))


# -- with root: real rules in a throw-away namespace ----------------------------------------------
def endpoint(pod: str, address: str, node: str = "node-1") -> Endpoint:
    return Endpoint(address, pod, "u1", node, "zone-a", True, True, False)


def web_slice(service: str, *endpoints: Endpoint) -> EndpointSlice:
    return EndpointSlice(service, (EndpointPort("http", 8080),), endpoints, name=f"{service}-1")


@pytest.fixture(params=[IptablesProxy, NftablesProxy], ids=["iptables", "nftables"])
def programmed(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, tuple[Service, EndpointSlice]]]]:
    """The harness's own proxy (kube-proxy's layout) in the namespace, with a Service of three
    endpoints, one without endpoints, and one under Local policy whose endpoints are all on
    node-2."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    with scratch_namespace() as netns:
        yield from programmed_in(netns, request.param(), tmp_path)


def programmed_in(
    netns: str, proxy: KernelRuleProxy, tmp_path: Path
) -> Iterator[tuple[str, dict[str, tuple[Service, EndpointSlice]]]]:
    proxy.start(NodeContext("node-1", netns, "hkt0", tmp_path))
    web = Service("web", VIP, WEB)
    local = Service("local", LOCAL_VIP, WEB, internal_traffic_policy=TrafficPolicy.LOCAL)
    programs = {
        "web": (web, web_slice("web", *(endpoint(f"web-{i}", f"10.244.0.{i}") for i in (2, 3, 4)))),
        "empty": (Service("empty", EMPTY_VIP, WEB), web_slice("empty")),
        "local": (local, web_slice("local", endpoint("far", "10.244.1.2", node="node-2"))),
    }
    for service, endpoint_slice in programs.values():
        proxy.on_service_add(service)
        proxy.on_endpoint_slice_add(endpoint_slice)
    proxy.sync()
    try:
        yield netns, programs
    finally:
        proxy.stop()


def trace(netns: str, service: Service, endpoint_slice: EndpointSlice) -> Any:
    rules = detect(netns_reader(netns), netns)
    packet = Packet(CLIENT, service.cluster_ip, "tcp", 80)
    return rules.layout, rules.reachability(packet, backend_lookup([endpoint_slice], PORT, []))


@needs_root
def test_the_harness_proxies_rules_are_read_and_traced_exactly(
    programmed: tuple[str, dict[str, tuple[Service, EndpointSlice]]],
) -> None:
    netns, programs = programmed
    layout, reach = trace(netns, *programs["web"])
    assert layout in (Layout.IPTABLES, Layout.NFTABLES)
    shares = sorted(reach.probabilities.values())
    assert sorted(str(b) for b in reach.probabilities) == ["web-2/u1", "web-3/u1", "web-4/u1"]
    assert all(abs(share - 1 / 3) < 1e-6 for share in shares), shares
    assert (reach.rejects, reach.drops) == (False, False)
    _, reach = trace(netns, *programs["empty"])
    assert (reach.rejects, reach.drops, dict(reach.probabilities)) == (True, False, {})
    _, reach = trace(netns, *programs["local"])  # endpoints, none on this node: DROP
    assert (reach.rejects, reach.drops, dict(reach.probabilities)) == (False, True, {})


def restore(netns: str, tool: Sequence[str], text: str) -> None:
    subprocess.run(["ip", "netns", "exec", netns, *tool], input=text, text=True, check=True)


@needs_root
def test_real_kube_proxy_iptables_layout_is_traced() -> None:
    pods = ["10.244.0.2", "10.244.0.3", "10.244.0.4"]
    with scratch_namespace() as netns:
        restore(netns, ["iptables-restore"], kube_proxy_iptables(VIP, pods, EMPTY_VIP))
        rules = wait_for_layout(netns_reader(netns), netns, RealClock(), 0.0)  # probed
    assert rules.layout is Layout.IPTABLES
    reach = rules.reachability(Packet(CLIENT, VIP, "tcp", 80), backend_lookup([], PORT, []))
    third = 715827883 / 2**31  # the kernel's integer behind 0.33333333333
    assert reach.probabilities == {
        Backend("?", "10.244.0.2:8080"): third,
        Backend("?", "10.244.0.3:8080"): (1 - third) / 2,
        Backend("?", "10.244.0.4:8080"): (1 - third) / 2,
    }
    empty = rules.reachability(Packet(CLIENT, EMPTY_VIP, "tcp", 80), backend_lookup([], PORT, []))
    assert (empty.rejects, empty.drops, dict(empty.probabilities)) == (True, False, {})


@needs_root
def test_real_kube_proxy_nftables_layout_is_traced() -> None:
    pods = ["10.244.0.2", "10.244.0.3"]
    with scratch_namespace() as netns:
        restore(netns, ["nft", "-f", "-"], kube_proxy_nft(VIP, pods, EMPTY_VIP, LOCAL_VIP))
        rules = wait_for_layout(netns_reader(netns), netns, RealClock(), 0.0)
    assert rules.layout is Layout.NFTABLES
    lookup = backend_lookup([], PORT, [])
    reach = rules.reachability(Packet(CLIENT, VIP, "tcp", 80), lookup)
    assert reach.probabilities == {
        Backend("?", "10.244.0.2:8080"): 0.5,
        Backend("?", "10.244.0.3:8080"): 0.5,
    }
    empty = rules.reachability(Packet(CLIENT, EMPTY_VIP, "tcp", 80), lookup)
    assert (empty.rejects, empty.drops) == (True, False)
    local = rules.reachability(Packet(CLIENT, LOCAL_VIP, "tcp", 80), lookup)
    assert (local.rejects, local.drops, dict(local.probabilities)) == (False, True, {})


# -- with root and the mock API server: KubeTarget --pods local ------------------------------------
@pytest.fixture
def local_target(mock_api: MockApiServer, cluster: Cluster) -> Iterator[tuple[KubeTarget, Cluster]]:
    """A `--pods local` target (real node and client namespaces, a mock API server whose fake
    control plane allocates ClusterIPs and writes EndpointSlices); no proxy command."""
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("needs root and nft (network namespaces)")
    from harness.local.names import new_prefix

    with FakeCluster(mock_api.url, kubelet=False):
        target = KubeTarget(
            TargetOptions(pods="local", prefix=new_prefix(), extra={"node_rules_wait_s": 0.5}),
            cluster=cluster,
        )
        target.open()
        try:
            yield target, cluster
        finally:
            target.close()


def stand_in(proxy: KernelRuleProxy, target: KubeTarget, cluster: Cluster, name: str) -> None:
    """Do what kube-proxy does for Service `name`: once the API shows the model's slices, hand
    the Service (with its allocated ClusterIP) and the slices to the proxy and sync."""
    wanted = derive_slices(target.state, name)
    eventually(lambda: check_endpoints(name, wanted, target.endpoint_slices(name)).holds)
    vip = cluster.core.read_namespaced_service(name, target.namespace).spec.cluster_ip
    proxy.on_service_add(replace(target.state.services[name], cluster_ip=vip))
    for endpoint_slice in target.endpoint_slices(name):
        proxy.on_endpoint_slice_add(endpoint_slice)
    proxy.sync()


def exact_balance(target: KubeTarget, name: str) -> Any:
    expected = expect(target.state, name, "http")
    reach = target.reachability(name, "http", "client-1")
    return check_exact_balance(name, expected.usable, reach, expected.drops)


def test_an_empty_node_namespace_is_unsupported_and_exact_balance_is_skipped(
    local_target: tuple[KubeTarget, Cluster],
) -> None:
    target, _ = local_target
    assert target.reads_rules is False
    assert target.rules_unsupported is not None
    assert "not kube-proxy's iptables or nftables layout" in target.rules_unsupported
    assert applicable("exact-balance", target) == target.rules_unsupported


@pytest.mark.parametrize(
    "proxy_class, caught",
    [(IptablesProxy, False), (NftablesProxy, False), (NeverRemovesProxy, True)],
    ids=["iptables", "nftables", "mutant-never-removes"],
)
def test_kube_target_reads_the_node_namespace_and_exact_balance_judges_it(
    local_target: tuple[KubeTarget, Cluster],
    tmp_path: Path,
    proxy_class: type[KernelRuleProxy],
    caught: bool,
) -> None:
    target, cluster = local_target
    assert target.runtime is not None
    netns = target.runtime.node_netns  # type: ignore[attr-defined]
    proxy = proxy_class()
    proxy.start(NodeContext("node-1", netns, target.prefix, tmp_path))
    try:
        assert target.reads_rules, target.rules_unsupported
        target.apply(CreateService("web", WEB))
        for pod in ("web-a", "web-b", "web-c"):
            target.apply(CreatePod(pod, WEB))
        stand_in(proxy, target, cluster, "web")
        reach = target.reachability("web", "http", "client-1")
        assert sorted(map(str, reach.probabilities)) == ["web-a/u1", "web-b/u2", "web-c/u3"]
        assert all(abs(p - 1 / 3) < 1e-6 for p in reach.probabilities.values())
        assert exact_balance(target, "web").holds
        target.apply(SetReady("web-b", False))  # web-b stays a known pod, no longer usable
        target.apply(DeletePod("web-c", 0))  # web-c is gone altogether
        stand_in(proxy, target, cluster, "web")
        verdict = exact_balance(target, "web")
        assert verdict.holds is not caught, verdict.message
        if caught:
            assert "extra" in verdict.message and "web-b/u2" in verdict.message
            assert "?/10.244.0.12:8080" in verdict.message  # the deleted pod, by its address
        target.apply(SetReady("web-a", False))
        target.apply(SetReady("web-b", True))
        target.apply(CreateService("empty", labels_of({"app": "none"})))
        stand_in(proxy, target, cluster, "empty")
        empty = target.reachability("empty", "http", "client-1")
        assert (empty.rejects, dict(empty.probabilities)) == (True, {})
    finally:
        proxy.stop()


# -- the mock API server alone: --read-node-rules reader pods --------------------------------------
class ReaderExec:
    """`pods/exec` for a cluster whose reader pods answer `iptables-save` with `dump`; other
    pods are the fake cluster's."""

    def __init__(self, fake: FakeCluster) -> None:
        self.fake = fake
        self.dump = kube_proxy_iptables("10.96.9.9", ["10.244.9.9"], "10.96.9.8")
        self.reads: list[tuple[str, list[str]]] = []

    def __call__(self, pod: str, argv: Sequence[str], timeout_s: float) -> str:
        if "-node-rules-" not in pod:
            return self.fake.exec(pod, argv, timeout_s)
        self.reads.append((pod, list(argv)))
        return self.dump if argv[0] == "iptables-save" else ""


def reader_pods(cluster: Cluster, namespace: str) -> list[Any]:
    pods = cluster.core.list_namespaced_pod(namespace).items
    return sorted(
        (p for p in pods if "-node-rules-" in p.metadata.name), key=lambda p: p.metadata.name
    )


def test_without_permission_no_reader_pod_is_made_and_exact_balance_is_skipped(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    make_nodes(cluster)
    with FakeCluster(mock_api.url) as fake:
        target = KubeTarget(
            TargetOptions(extra={"startup_s": 5}), cluster=cluster, pod_exec=fake.exec
        )
        target.open()
        try:
            assert reader_pods(cluster, target.namespace) == []
            labels = cluster.core.read_namespace(target.namespace).metadata.labels
            assert POD_SECURITY_ENFORCE not in labels
            assert target.reads_rules is False
            assert "--read-node-rules" in (applicable("exact-balance", target) or "")
        finally:
            target.close()


def test_reader_pods_run_privileged_on_each_node_are_traced_and_removed_at_close(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    make_nodes(cluster)
    with FakeCluster(mock_api.url) as fake:
        reader = ReaderExec(fake)
        options = TargetOptions(read_node_rules="example.org/rules:1", extra={"startup_s": 5})
        target = KubeTarget(options, cluster=cluster, pod_exec=reader)
        target.open()
        namespace, prefix = target.namespace, target.prefix
        try:
            labels = cluster.core.read_namespace(namespace).metadata.labels
            assert labels[POD_SECURITY_ENFORCE] == "privileged"
            pods = reader_pods(cluster, namespace)
            assert [p.metadata.name for p in pods] == [
                f"{prefix}-node-rules-node-1",
                f"{prefix}-node-rules-node-2",
            ]
            assert [p.spec.node_name for p in pods] == ["worker-a", "worker-b"]
            for pod in pods:
                assert pod.spec.host_network is True
                container = pod.spec.containers[0]
                assert container.security_context.privileged is True
                assert container.image == "example.org/rules:1"
                assert pod.metadata.labels[RUN_LABEL] == prefix  # found by `harness clean --kube`
                assert MANAGED_BY_KEY in pod.metadata.labels
            assert target.reads_rules, target.rules_unsupported
            target.apply(CreateService("web", WEB))
            target.apply(CreatePod("web-a", WEB))
            target.apply(CreatePod("web-b", WEB))
            wanted = derive_slices(target.state, "web")
            eventually(lambda: check_endpoints("web", wanted, target.endpoint_slices("web")).holds)
            vip = cluster.core.read_namespaced_service("web", namespace).spec.cluster_ip
            by_pod = {
                p.metadata.name: p.status.pod_ip
                for p in cluster.core.list_namespaced_pod(namespace).items
            }
            reader.dump = kube_proxy_iptables(vip, [by_pod["web-a"], by_pod["web-b"]], "10.96.9.8")
            reader.reads.clear()
            reach = target.reachability("web", "http", "client-1")
            assert reach.probabilities == {Backend("web-a", "u1"): 0.5, Backend("web-b", "u2"): 0.5}
            # the client pods run on worker-a (the model's node-1): its reader was read
            assert {pod for pod, _ in reader.reads} == {f"{prefix}-node-rules-node-1"}
            # the layout found first is read first: one exec per read once it is known
            assert [argv for _, argv in reader.reads] == [["iptables-save"]]
            assert exact_balance(target, "web").holds
        finally:
            target.close()
        assert reader_pods(cluster, namespace) == []
