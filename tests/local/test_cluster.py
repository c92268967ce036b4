"""The local cluster and its traffic, without any proxy: pods answer on their own IPs, clients
reach them through the node, incarnations are told apart, nothing leaks to the root namespace."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator

import pytest

from harness.errors import EnvironmentProblem
from harness.local.cluster import LocalCluster
from harness.local.netns import read_sysctl
from harness.local.traffic import Batch, ClientAgent
from harness.model.objects import Backend, ContainerPort, Pod
from harness.traffic import ErrorKind
from tests.hostsafety import RootGuard
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]


@pytest.fixture
def cluster(prefix: str) -> Iterator[LocalCluster]:
    with LocalCluster(prefix, ["client-1", "client-2"]) as opened:
        yield opened


@pytest.fixture
def agent(cluster: LocalCluster) -> Iterator[ClientAgent]:
    with ClientAgent(cluster.clients["client-1"].netns) as opened:
        yield opened


def test_pods_answer_with_name_and_incarnation_on_their_own_ports(
    cluster: LocalCluster, agent: ClientAgent
) -> None:
    cluster.add_pods(
        [
            Pod("web-0", "u1", "10.244.0.10"),
            Pod("web-1", "u2", "10.244.0.11", ports=(ContainerPort("http", 9090),)),
        ]
    )
    first = agent.run(Batch("10.244.0.10", 8080, count=3))
    second = agent.run(Batch("10.244.0.11", 9090, count=3, keep_alive=True, connections=1))
    assert [o.backend for o in first] == [Backend("web-0", "u1")] * 3
    assert [o.backend for o in second] == [Backend("web-1", "u2")] * 3
    assert [o.error for o in agent.run(Batch("10.244.0.11", 8080, count=1))] == [ErrorKind.REFUSED]


def test_a_recreated_pod_with_the_same_address_answers_as_its_new_incarnation(
    cluster: LocalCluster, agent: ClientAgent
) -> None:
    (old,) = cluster.add_pods([Pod("web-0", "u1", "10.244.0.10")])
    assert agent.run(Batch("10.244.0.10", 8080, count=1))[0].backend == Backend("web-0", "u1")
    cluster.remove_pods([old])
    gone = agent.run(Batch("10.244.0.10", 8080, count=1, timeout_s=0.3))[0]
    assert gone.backend is None and gone.error is not None
    cluster.add_pods([Pod("web-0", "u2", "10.244.0.10")])
    outcomes = agent.run(Batch("10.244.0.10", 8080, count=5, timeout_s=1.0))
    assert [o.backend for o in outcomes] == [Backend("web-0", "u2")] * 5


def test_plain_tcp_ports_answer_the_identity_line(cluster: LocalCluster) -> None:
    cluster.add_pods([Pod("db-0", "u7", "10.244.0.20", ports=(ContainerPort("tcp-db", 5432),))])
    client = cluster.clients["client-2"]
    reader = (
        "import socket\n"
        "s = socket.create_connection(('10.244.0.20', 5432), 2)\n"
        "s.sendall(b'x\\n')\n"
        "data = b''\n"
        "while data.count(b'\\n') < 2: data += s.recv(100)\n"
        "print(data)"
    )
    answer = subprocess.run(
        ["ip", "netns", "exec", client.netns, "python3", "-c", reader],
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    assert answer.stdout.strip() == "b'db-0 u7\\ndb-0 u7\\n'"  # on connect, then per line


def test_a_silent_address_times_out_within_the_bound(
    cluster: LocalCluster, agent: ClientAgent
) -> None:
    # an unused pod address: ARP gets no answer, the SYN goes nowhere
    (outcome,) = agent.run(Batch("10.244.200.1", 8080, count=1, timeout_s=0.3))
    assert outcome.error == ErrorKind.TIMEOUT
    assert 250 < outcome.latency_ms < 1000


def test_kept_alive_connections_stay_open_across_requests(
    cluster: LocalCluster, agent: ClientAgent
) -> None:
    cluster.add_pods([Pod("web-0", "u1", "10.244.0.10")])
    outcomes = agent.run(Batch("10.244.0.10", 8080, count=9, keep_alive=True, connections=3))
    assert [o.connection for o in outcomes] == [0, 1, 2] * 3
    assert all(o.backend == Backend("web-0", "u1") for o in outcomes)
    assert cluster.pod_server.stats()["connections"] == 0  # all closed at the batch's end


def test_node_forwards_and_the_root_namespace_is_untouched(prefix: str) -> None:
    root = RootGuard("an open cluster")
    with LocalCluster(prefix, ["client-1"]) as cluster:
        cluster.add_pods([Pod(f"web-{i}", f"u{i}", f"10.244.0.{10 + i}") for i in range(5)])
        assert read_sysctl(cluster.node_netns, "net.ipv4.ip_forward") == "1"
        assert read_sysctl(cluster.node_netns, "net.bridge.bridge-nf-call-iptables") == "1"
        assert read_sysctl(cluster.node_netns, "net.ipv4.icmp_ratemask") == "0"
        # no link of the run in the root namespace, no link of the node leads to it
        assert (
            prefix
            not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        )
        node_links = subprocess.run(
            ["ip", "-n", cluster.node_netns, "-o", "-d", "link"], capture_output=True, text=True
        ).stdout
        peers = [line.split("link-netns ")[1].split()[0] for line in node_links.splitlines()
                 if "link-netns" in line]  # fmt: skip
        assert len(peers) == 6 and all(p.startswith(prefix) for p in peers)
        root.check(own={prefix})  # while open; after the test, by tests/conftest.py


@pytest.mark.skipif(shutil.which("iptables") is None, reason="needs iptables")
def test_a_rejecting_node_refuses_every_one_of_many_fast_connections(
    cluster: LocalCluster, agent: ClientAgent
) -> None:
    # what kube-proxy does for a Service without endpoints; ICMP rate limits must not drop any,
    # and the node routes the Service range (harness.local.cluster, "What the node provides")
    node = ["ip", "netns", "exec", cluster.node_netns]
    routes = subprocess.run([*node, "ip", "route"], capture_output=True, text=True, check=True)
    assert f"10.96.0.0/16 dev {cluster.names.service_sink}" in routes.stdout
    subprocess.run(
        [*node, "iptables", "-A", "FORWARD", "-d", "10.96.0.10", "-p", "tcp", "-j", "REJECT"],
        check=True,
    )
    # a REJECT answers in well under a millisecond; 1 s budgets for a loaded machine
    outcomes = agent.run(Batch("10.96.0.10", 80, count=1200, timeout_s=1.0))
    assert Counter(o.error for o in outcomes) == {ErrorKind.REFUSED: 1200}


def test_a_failed_add_leaves_no_namespace_link_or_arp_entry(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(specs: object) -> None:
        raise EnvironmentProblem("the pod server refused add: test")

    monkeypatch.setattr(cluster.pod_server, "add", refuse)
    with pytest.raises(EnvironmentProblem, match="test"):
        cluster.add_pods([Pod("web-0", "u1", "10.244.0.10"), Pod("web-1", "u2", "10.244.0.11")])
    assert cluster.pods == {}
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{cluster.names.prefix}-p" not in namespaces
    node = subprocess.run(
        ["ip", "-n", cluster.node_netns, "-o", "link", "show", "master", cluster.names.bridge],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert node.strip() == ""
    arp = subprocess.run(
        ["ip", "-n", cluster.node_netns, "neigh", "show", "nud", "permanent"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "10.244.0.1" not in arp


def test_a_packet_to_the_service_range_that_nothing_rejects_vanishes_without_looping(
    cluster: LocalCluster, agent: ClientAgent
) -> None:
    """Issue 15: the node's Service route must not loop. Over `lo`, a forwarded packet came back
    in and was forwarded again until its TTL ran out, and the client saw "no route to host";
    through the dummy device it is discarded, as it would leave a real node, and the client
    waits (only a REJECT may answer)."""
    node = ["ip", "netns", "exec", cluster.node_netns]

    def forwarded() -> int:
        counters = subprocess.run(
            [*node, "nstat", "-az", "IpForwDatagrams", "IcmpOutTimeExcds"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        values = {line.split()[0]: int(line.split()[1]) for line in counters.splitlines()[1:]}
        assert values["IcmpOutTimeExcds"] == 0, values
        return values["IpForwDatagrams"]

    before = forwarded()
    outcomes = agent.run(Batch("10.96.7.7", 80, count=2, timeout_s=0.5))
    assert Counter(o.error for o in outcomes) == {ErrorKind.TIMEOUT: 2}
    assert forwarded() - before < 10  # a few SYN retransmissions, not 64 hops each
