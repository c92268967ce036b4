"""UDP on the kube target (issue 12 items 1-2 on a real cluster): the nc loop, its parsing, the
pods that serve UDP, and the target sending to UDP Service ports.

The outputs parsed below are what the generated script printed for real, run on this machine
against a loopback UDP server answering as agnhost netexec does (`hostname` -> the pod's
hostname, `clientip` -> `host:port`, no newline), with netcat-openbsd 1.219 (the Alpine
package agnhost installs is the same program) under busybox 1.35's `sh` and `timeout` (the
agnhost image's; `timeout` exits 143) and under dash with coreutils' `timeout` (exit 124, and
`date +%s` where the shell has no `$EPOCHREALTIME`). Neither nc nor a cluster is needed here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest
from mockapi import MockApiServer
from test_external import Answers, answered_target
from test_standin import needs_netns, run_on_standin

from harness.errors import UsageError
from harness.events import CreatePod, CreateService, DeletePod, Scale, SetReady, SetServiceType
from harness.kube.api import Cluster
from harness.kube.objects import Placement, pod_manifest
from harness.kube.udp import FRESH_PORTS, build_command, fresh_ports, parse_output, send_batch
from harness.model.objects import ContainerPort, Protocol, ServiceType, labels_of
from harness.model.state import ClusterState
from harness.protocols import KUBE_SCTP, environment_notes
from harness.targets.kube import KubeTarget
from harness.traffic import ErrorKind, TrafficRequest
from harness.udp_support import generates_udp

WEB = labels_of({"app": "web"})

ANSWERED_WITH_SOURCES = (  # busybox sh, report_source, two flows one after the other
    "= 21001 0 1796053881.091145 1796053881.094943 web-0--u3 127.0.0.1:21001\n"
    "= 21002 0 1796053881.098731 1796053881.102116 web-0--u3 127.0.0.1:21002\n"
)
SILENT_BUSYBOX = "= 21003 143 1796053881.107032 1796053882.109701 - -\n"  # nothing came back
REFUSED_IN_PARALLEL = (  # no listener: ICMP port unreachable; two flows at once
    "= 21004 0 1796053882.111931 1796053882.116013 - -\n"
    "= 21005 0 1796053882.112157 1796053882.116528 - -\n"
)
SILENT_DASH = "= 21012 124 1796053893 1796053893 - -\n"  # coreutils timeout, whole seconds
NO_NC = "= 21011 127 1796053886 1796053886 - -\n"  # the image has no nc: command not found


def kinds(outcomes: Sequence[object]) -> list[str]:
    return [
        o.backend.pod if o.backend else str(o.error)  # type: ignore[attr-defined]
        for o in outcomes
    ]


def test_the_script_sends_hostname_from_each_chosen_port_within_the_timeout() -> None:
    argv = build_command([21001, 21002], "10.96.0.7", 80, 1.5, report_source=True)
    assert argv[:2] == ["/bin/sh", "-c"]
    script = argv[-1]
    assert "echo hostname | timeout 2 nc -u -W 1 -w 4 -p $1 10.96.0.7 80" in script
    assert "echo clientip | timeout 2 nc" in script  # the same flow: the same source port
    assert "for p in 21001 21002; do r $p; done" in script
    assert "echo clientip" not in build_command([21001], "10.96.0.7", 80, 1.5)[-1]
    brief = build_command([21001], "10.96.0.7", 80, 0.2)[-1]  # busybox counts whole seconds
    assert "timeout 1 nc -u -W 1 -w 3 " in brief
    parallel = build_command([21001, 21002], "10.96.0.7", 80, 1.5, parallel=True)[-1]
    assert "do r $p & done; wait" in parallel


@pytest.mark.parametrize(
    ("ports", "address", "timeout_s", "problem"),
    [
        ([21001], "10.96.0.7; reboot", 1.0, "not an IP address"),
        ([], "10.96.0.7", 1.0, "bad UDP request"),
        ([70000], "10.96.0.7", 1.0, "ports must be 1..65535"),
        ([21001], "10.96.0.7", 0.0, "the timeout positive"),
    ],
)
def test_bad_requests_never_reach_a_script(
    ports: list[int], address: str, timeout_s: float, problem: str
) -> None:
    with pytest.raises(UsageError, match=problem):
        build_command(ports, address, 80, timeout_s)


def test_answers_name_the_pod_and_the_source_it_saw() -> None:
    outcomes = parse_output(ANSWERED_WITH_SOURCES, [21001, 21002], 1.0)
    assert kinds(outcomes) == ["web-0", "web-0"]
    assert [o.backend.uid for o in outcomes if o.backend] == ["u3", "u3"]
    assert [o.seen_source for o in outcomes] == ["127.0.0.1", "127.0.0.1"]
    assert [o.connection for o in outcomes] == [0, 1]
    assert outcomes[0].latency_ms == pytest.approx(3.798, abs=0.01)


def test_silence_is_a_timeout_an_early_end_a_refusal_and_a_missing_tool_other() -> None:
    assert kinds(parse_output(SILENT_BUSYBOX, [21003], 1.0)) == [ErrorKind.TIMEOUT]
    assert kinds(parse_output(SILENT_DASH, [21012], 0.5)) == [ErrorKind.TIMEOUT]
    refused = parse_output(REFUSED_IN_PARALLEL, [21004, 21005], 1.0)
    assert kinds(refused) == [ErrorKind.REFUSED, ErrorKind.REFUSED]
    assert all(o.latency_ms < 10 for o in refused)  # measured in the pod: "refused at once"
    assert kinds(parse_output(NO_NC, [21011], 0.5)) == [ErrorKind.OTHER]


def test_records_are_matched_to_their_ports_and_missing_ones_time_out() -> None:
    """Flows sent at once print in any order; a cut-short exec leaves some without a line."""
    swapped = "".join(reversed(REFUSED_IN_PARALLEL.splitlines(keepends=True)))
    outcomes = parse_output(swapped + "noise\n= x 0 1 2 a b\n", [21005, 21004, 21999], 1.0)
    assert kinds(outcomes) == [ErrorKind.REFUSED, ErrorKind.REFUSED, ErrorKind.TIMEOUT]
    assert outcomes[2].latency_ms == 1000.0
    garbled = "= 21001 0 1 2 not-a-pod-name -\n= 21002 0 x y web-0--u3 -\n"
    odd = parse_output(garbled, [21001, 21002], 2.0)
    assert kinds(odd) == [ErrorKind.OTHER, "web-0"]
    assert odd[1].latency_ms == 2000.0  # clock readings unreadable: the timeout, never less


def test_fresh_ports_come_in_turn_below_the_ephemeral_range() -> None:
    first, second = fresh_ports(2)
    assert first in FRESH_PORTS and second in FRESH_PORTS and first != second
    assert max(FRESH_PORTS) < 32768  # Linux's default ip_local_port_range starts there


def test_only_tcp_and_udp_are_sent() -> None:
    def refuse(where: str, argv: Sequence[str], timeout_s: float) -> str:
        raise AssertionError("nothing may run")

    from harness.clock import RealClock

    with pytest.raises(UsageError, match="TCP and UDP only, not 'SCTP'"):
        send_batch(refuse, "pod", TrafficRequest("web"), "10.96.0.7", 80, RealClock(), "SCTP")
    assert environment_notes("kube")["sctp"] == KUBE_SCTP
    assert KUBE_SCTP.startswith("unsupported by the environment")


def _pod(*ports: ContainerPort) -> str:
    state = ClusterState()
    pod = CreatePod("web-a", WEB).apply(state).pods["web-a"]
    manifest = pod_manifest(replace(pod, ports=ports), Placement("ns", "hk00001"))
    return str(manifest["spec"]["containers"][0]["command"][-1])


def test_pods_serve_every_udp_container_port() -> None:
    udp = Protocol.UDP.value
    same = _pod(ContainerPort("http", 8080), ContainerPort("udp", 8080, udp))
    assert "exec /agnhost netexec --http-port=8080 --udp-port=8080 " in same
    tcp_only = _pod(ContainerPort("http", 8080))
    assert "--udp-port=-1 " in tcp_only and " & " not in tcp_only
    other = _pod(ContainerPort("http", 8080), ContainerPort("udp", 5353, udp))
    assert "/agnhost netexec --http-port=0 --udp-port=5353 & " in other  # no TCP 5353 served
    assert "exec /agnhost netexec --http-port=8080 --udp-port=-1 " in other


@pytest.fixture
def opened(
    mock_api: MockApiServer, cluster: Cluster
) -> Iterator[tuple[KubeTarget, Answers, Cluster]]:
    """The opened kube target, its nc loops answered by the test (`Answers`)."""
    with answered_target(mock_api.url, cluster, "nc -u") as found:
        yield found


def _records(script: str, line: str) -> str:
    """`line` (`{port}` filled in) for every source port the script's loop sends from."""
    ports = script.split("for p in ")[1].split(";")[0].split()
    return "".join(line.format(port=p) for p in ports)


def test_a_udp_service_port_is_sent_to_with_nc_from_the_client_pod(
    opened: tuple[KubeTarget, Answers, Cluster],
) -> None:
    target, datagrams, cluster = opened
    assert target.sends_udp and generates_udp(target)  # the search draws UDP Services here
    target.apply(CreateService("dns", WEB, target_port="udp", protocol=Protocol.UDP))
    target.apply(CreatePod("web-a", WEB, udp_port=8080))
    written = cluster.core.read_namespaced_pod("web-a", target.namespace).spec.containers[0]
    assert "--udp-port=8080" in written.command[-1]  # the API's pod serves its UDP port
    assert [(p.name, p.protocol) for p in written.ports] == [("http", "TCP"), ("udp", "UDP")]
    service = cluster.core.list_namespaced_service(target.namespace).items[0]
    assert [(p.port, p.protocol, p.target_port) for p in service.spec.ports] == [(80, "UDP", "udp")]
    datagrams.answer = lambda pod, script: _records(script, "= {port} 0 1.0 1.002 web-a--u1 -\n")
    sample = target.send(TrafficRequest("dns", count=3, timeout_s=1.0))
    pod, script = datagrams.loops[-1]
    assert pod == "harness-client-1"
    assert f"nc -u -W 1 -w 3 -p $1 {target.service_ip('dns')} 80" in script
    assert kinds(sample.outcomes) == ["web-a"] * 3
    assert len(set(script.split("for p in ")[1].split(";")[0].split())) == 3  # fresh flows
    target.apply(SetServiceType("dns", ServiceType.NODE_PORT))
    node_port = target.state.services["dns"].ports[0].node_port
    datagrams.answer = lambda pod, script: _records(
        script, "= {port} 0 1.0 1.001 web-a--u1 172.18.0.4:{port}\n"
    )
    outside = target.send(TrafficRequest("dns", count=2, timeout_s=1.0, external_node="node-1"))
    pod, script = datagrams.loops[-1]
    assert pod == f"{target.prefix}-host-node-2" and f"172.18.0.3 {node_port}" in script
    assert "echo clientip" in script
    assert [o.seen_source for o in outside.outcomes] == ["172.18.0.4"] * 2
    target.send(TrafficRequest("dns", count=1, client_node="node-2"))
    pod, script = datagrams.loops[-1]
    assert pod == f"{target.prefix}-host-node-2" and "echo clientip" not in script


def test_held_flows_keep_their_source_port_and_the_pod_they_left_from(
    opened: tuple[KubeTarget, Answers, Cluster],
) -> None:
    target, datagrams, _ = opened
    target.apply(CreateService("dns", WEB, target_port="udp", protocol=Protocol.UDP))
    target.apply(CreateService("web", WEB))
    target.apply(CreatePod("web-a", WEB, udp_port=8080))
    datagrams.answer = lambda pod, script: _records(script, "= {port} 0 1.0 1.002 web-a--u1 -\n")
    number, outcome = target.hold("dns", "client-2", 1.0)
    assert number is not None and outcome.backend is not None
    first_pod, first = datagrams.loops[-1]
    datagrams.answer = lambda pod, script: _records(script, "= {port} 143 1.0 2.0 - -\n")
    again = target.ask_held(number, 1.0)
    assert again.error == ErrorKind.TIMEOUT and datagrams.loops[-1] == (first_pod, first)
    assert first_pod == "harness-client-2" and "for p in 12345;" in first
    tcp_number, tcp = target.hold("web", "client-1", 1.0)  # no TCP connection outlives an exec
    assert tcp_number is None and tcp.error == ErrorKind.OTHER
    with pytest.raises(UsageError, match="no UDP port 'http' with a node port"):
        target.hold_node_port("dns", "node-1", 1.0)  # a ClusterIP Service has none
    target.apply(SetServiceType("dns", ServiceType.NODE_PORT))
    node_port = target.state.services["dns"].ports[0].node_port
    outside, _ = target.hold_node_port("dns", "node-1", 1.0)
    pod, script = datagrams.loops[-1]
    assert pod == f"{target.prefix}-host-node-2" and f"172.18.0.3 {node_port}" in script
    assert target.ask_held(outside, 1.0).error == ErrorKind.TIMEOUT
    assert datagrams.loops[-1] == (pod, script)  # the same flow: the same pod and source port
    target.release_held()
    assert target.ask_held(number, 1.0).error == ErrorKind.RESET


# -- --pods local end to end: root, network namespaces (item 3) ----------------------------------
@needs_netns
@pytest.mark.netns
def test_udp_services_pass_on_the_standin_in_the_kubelet_less_mode(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    """A fixed sequence on the kube target with `--pods local` and the stand-in proxy: a UDP
    Service gets two endpoints (fresh flows reach both, held flows are opened), one is made
    unready (held flows on it move, none stale), the other killed (refused at once: REJECT
    for UDP too). Every verdict holds, the held flows were judged through the changes, and
    fresh UDP flows reached the pods through the node's rules, from the client namespaces."""
    sequence = [
        CreateService("dns", WEB, target_port="udp", protocol=Protocol.UDP),
        Scale("web", 2),
        SetReady("web-0", False),
        DeletePod("web-1", grace_s=0),
    ]
    runner, results = run_on_standin(mock_api.url, cluster, sequence, generates_udp)
    assert [(v.property, v.message) for r in results for v in r.failures()] == []
    judged = {v.property for r in results for v in r.verdicts}
    assert {"no-stale-traffic", "reject-when-empty", "long-lived-connections"} <= judged
    assert any("udp-flow-through-change" in r.checked for r in results)
    held = [c for record in runner.history for c in record.get("long_lived", [])]
    assert held and all(c.get("protocol") == "UDP" for c in held)
