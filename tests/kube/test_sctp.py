"""SCTP on the kube target with `--kube-sctp` (issue 12 item 3): netexec `/dial` requests, their
parsing, the pods that serve and send SCTP, the option's plumbing, and the nodes' clients
leaving SCTP unjudged.

The JSON bodies below are the shapes agnhost netexec's `dialHandler` writes
(test/images/agnhost/netexec/netexec.go: `json.Marshal(map[string][]string)`, `responses` only
when the last try answered, errors `sctp dial failed. err:<errno text>` from `dialSCTP`, and
`http.Error`'s plain text for a bad parameter). Neither netexec nor a cluster is needed here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest
from mockapi import MockApiServer
from test_external import Answers, answered_target
from test_standin import needs_netns, run_on_standin

from harness.cli import build_parser, target_options
from harness.clock import RealClock
from harness.errors import UsageError
from harness.events import (
    SCTP_PORT_NAME,
    CreatePod,
    CreateService,
    DeletePod,
    Scale,
    SetReady,
    SetServiceType,
)
from harness.failures import RunContext, _check_run
from harness.features import SCTP_FEATURE
from harness.kube.api import Cluster
from harness.kube.objects import CLIENT_DIAL_PORT, Placement, client_pod_manifest, pod_manifest
from harness.kube.sctp import (
    HOST_SCTP,
    REFUSALS_UNSEEN,
    build_command,
    error_kind,
    parse_output,
    send_batch,
)
from harness.model.objects import ContainerPort, Protocol, ServiceType, labels_of
from harness.model.state import ClusterState
from harness.nodeclients import unsent_from_nodes
from harness.protocols import KUBE_SCTP, sctp_unsupported
from harness.registry import TargetOptions
from harness.targets.kube import KubeTarget
from harness.traffic import ErrorKind, TrafficRequest, TrafficSample
from harness.udp_support import generates_sctp

WEB = labels_of({"app": "web"})
ANSWERED = '{"responses":["web-a--u1"]}\n= 0 0.004213\n'
REFUSED = '{"errors":["sctp dial failed. err:connection refused"]}\n= 0 0.001020\n'
TIMED_OUT = '{"errors":["sctp dial failed. err:connection timed out"]}\n= 0 1.2\n'
UNREAD = '{"errors":["reading from sctp connection failed. err:\'EOF\'"]}\n= 0 0.01\n'
BAD_PARAMETER = "request parameter not specified. <nil>\n\n= 0 0.001\n"  # http.Error text
CUT_BY_CURL = "= 28 1.001\n"  # --max-time: the kernel still retransmits the INIT
NO_NETEXEC = "= 7 0.0002\n"  # nothing on the client pod's dial port: a pod running `pause`


def kinds(outcomes: Sequence[object]) -> list[str]:
    return [
        o.backend.pod if o.backend else str(o.error)  # type: ignore[attr-defined]
        for o in outcomes
    ]


def test_each_request_is_one_dial_through_the_client_pods_own_netexec() -> None:
    argv = build_command("10.96.0.7", 5060, 3, 1.5)
    assert argv[:2] == ["/bin/sh", "-c"]
    script = argv[-1]
    url = (
        f"http://127.0.0.1:{CLIENT_DIAL_PORT}/dial?request=hostname&protocol=sctp"
        "&host=10.96.0.7&port=5060&tries=1"
    )
    assert f"'{url}'" in script and "--max-time 1.5 " in script
    assert script.startswith("for i in 0 1 2; do curl ") and "&" not in script.split("'")[0]
    parallel = build_command("10.96.0.7", 5060, 2, 1.5, parallel=True)[-1]
    assert '>"$d/$i" & done; wait;' in parallel and 'cat "$d/$i"' in parallel


@pytest.mark.parametrize(
    ("address", "port", "count", "timeout_s", "problem"),
    [
        ("10.96.0.7; reboot", 80, 1, 1.0, "not an IP address"),
        ("10.96.0.7", 70000, 1, 1.0, "must be 1..65535"),
        ("10.96.0.7", 80, 0, 1.0, "the count must be at least 1"),
        ("10.96.0.7", 80, 1, 0.0, "the timeout positive"),
    ],
)
def test_bad_requests_never_reach_a_script(
    address: str, port: int, count: int, timeout_s: float, problem: str
) -> None:
    with pytest.raises(UsageError, match=problem):
        build_command(address, port, count, timeout_s)


def test_netexecs_answers_and_errors_are_classified() -> None:
    output = ANSWERED + REFUSED + TIMED_OUT + UNREAD + BAD_PARAMETER + CUT_BY_CURL + NO_NETEXEC
    outcomes = parse_output(output, 7, 1.0)
    assert kinds(outcomes) == [
        "web-a",
        ErrorKind.REFUSED,
        ErrorKind.TIMEOUT,
        ErrorKind.OTHER,
        ErrorKind.OTHER,
        ErrorKind.TIMEOUT,
        ErrorKind.OTHER,
    ]
    assert outcomes[0].backend is not None and outcomes[0].backend.uid == "u1"
    assert outcomes[0].latency_ms == pytest.approx(4.213)
    assert [o.connection for o in outcomes] == list(range(7))
    assert error_kind("sctp dial failed. err:connection reset by peer") == ErrorKind.RESET


def test_missing_requests_time_out_and_extra_lines_are_ignored() -> None:
    outcomes = parse_output(ANSWERED, 3, 2.0)
    assert kinds(outcomes) == ["web-a", ErrorKind.TIMEOUT, ErrorKind.TIMEOUT]
    assert outcomes[2].latency_ms == 2000.0 and outcomes[2].connection == 2
    assert kinds(parse_output(ANSWERED + REFUSED, 1, 1.0)) == ["web-a"]
    not_a_pod = '{"responses":["not-a-pod-name"]}\n= 0 0.1\n'
    assert kinds(parse_output(not_a_pod, 1, 1.0)) == [ErrorKind.OTHER]


def test_a_batch_is_one_bounded_exec() -> None:
    calls: list[tuple[str, float]] = []

    def answer(where: str, argv: Sequence[str], timeout_s: float) -> str:
        calls.append((where, timeout_s))
        return ANSWERED * 2

    request = TrafficRequest("web", count=2, timeout_s=1.0)
    sample = send_batch(answer, "harness-client-1", request, "10.96.0.7", 80, RealClock())
    assert kinds(sample.outcomes) == ["web-a", "web-a"]
    assert calls == [("harness-client-1", 17.0)]  # two timeouts and the exec overhead


def _pod(*ports: ContainerPort, sctp: bool = True) -> str:
    pod = CreatePod("web-a", WEB).apply(ClusterState()).pods["web-a"]
    manifest = pod_manifest(replace(pod, ports=ports), Placement("ns", "hk00001", sctp=sctp))
    return str(manifest["spec"]["containers"][0]["command"][-1])


def test_pods_serve_each_sctp_port_with_a_netexec_of_its_own_only_with_sctp_on() -> None:
    both = (ContainerPort("http", 8080), ContainerPort(SCTP_PORT_NAME, 8080, Protocol.SCTP.value))
    command = _pod(*both)
    assert "/agnhost netexec --http-port=0 --udp-port=-1 --sctp-port=8080 & " in command
    assert "exec /agnhost netexec --http-port=8080 --udp-port=-1 " in command  # main unchanged
    assert "--sctp-port" not in _pod(ContainerPort("http", 8080))
    assert "--sctp-port" not in _pod(*both, sctp=False)  # no SCTP socket: no module loaded


def test_client_pods_run_netexec_only_with_sctp_on() -> None:
    def args(placement: Placement) -> list[str]:
        manifest = client_pod_manifest("harness-client-1", placement, None)
        return list(manifest["spec"]["containers"][0]["args"])

    assert args(Placement("ns", "hk00001")) == ["pause"]
    on = args(Placement("ns", "hk00001", sctp=True))
    assert on == ["netexec", f"--http-port={CLIENT_DIAL_PORT}", "--udp-port=-1"]


def test_sctp_is_opt_in_and_for_pods_cluster_only() -> None:
    plain = KubeTarget(TargetOptions())
    assert not plain.sends_sctp and SCTP_FEATURE not in plain.features()
    assert not generates_sctp(plain) and "--kube-sctp" in KUBE_SCTP
    on = KubeTarget(TargetOptions(extra={"sctp": "on"}))
    assert on.sends_sctp and SCTP_FEATURE in on.features() and generates_sctp(on)
    assert on.placement.sctp
    local = KubeTarget(TargetOptions(pods="local"))  # the local kernel is known: no opt-in
    assert local.sends_sctp == (sctp_unsupported() is None) and not local.placement.sctp
    with pytest.raises(UsageError, match="--kube-sctp is for --pods cluster"):
        KubeTarget(TargetOptions(pods="local", extra={"sctp": True}))
    with pytest.raises(UsageError, match="option sctp must be on or off, not 'often'"):
        KubeTarget(TargetOptions(extra={"sctp": "often"}))


def test_the_command_line_turns_it_on_for_the_kube_target_and_its_replays() -> None:
    parser = build_parser()
    options = target_options(parser.parse_args(["run", "--target", "kube", "--kube-sctp"]), "kube")
    assert options.extra["sctp"] is True
    assert "sctp" not in target_options(parser.parse_args(["run"]), "kube").extra
    args = parser.parse_args(["run", "--target", "local:iptables", "--kube-sctp"])
    with pytest.raises(UsageError, match="--kube-sctp is for --target kube, not local:iptables"):
        target_options(args, "local:iptables")
    assert RunContext("kube", 1, {"kube_sctp": True}).flags() == ["--kube-sctp"]
    with pytest.raises(UsageError, match=r"options\.kube_sctp must be true"):
        _check_run({"target": "kube", "options": {"kube_sctp": "yes"}}, "f", True)


@pytest.fixture
def opened(
    mock_api: MockApiServer, cluster: Cluster
) -> Iterator[tuple[KubeTarget, Answers, Cluster]]:
    """The opened kube target with `--kube-sctp`, its dial loops answered by the test."""
    with answered_target(mock_api.url, cluster, "protocol=sctp", sctp="on") as found:
        yield found


def test_an_sctp_service_port_is_dialled_from_the_client_pod_and_not_from_the_nodes(
    opened: tuple[KubeTarget, Answers, Cluster],
) -> None:
    target, dials, cluster = opened
    client = cluster.core.read_namespaced_pod("harness-client-1", target.namespace)
    assert client.spec.containers[0].args[0] == "netexec"
    target.apply(CreateService("sig", WEB, target_port=SCTP_PORT_NAME, protocol=Protocol.SCTP))
    target.apply(CreatePod("web-a", WEB, sctp_port=8080))
    written = cluster.core.read_namespaced_pod("web-a", target.namespace).spec.containers[0]
    assert "--sctp-port=8080 & " in written.command[-1]
    assert ("sctp", "SCTP") in [(p.name, p.protocol) for p in written.ports]
    dials.answer = lambda pod, script: ANSWERED * 2
    sample = target.send(TrafficRequest("sig", count=2, timeout_s=1.0))
    pod, script = dials.loops[-1]
    assert pod == "harness-client-1" and f"host={target.service_ip('sig')}&port=80&" in script
    assert kinds(sample.outcomes) == ["web-a", "web-a"]
    target.apply(SetServiceType("sig", ServiceType.NODE_PORT))
    assert unsent_from_nodes(target, target.state, "sig") == HOST_SCTP
    with pytest.raises(UsageError, match="the hostNetwork clients send no SCTP"):
        target.send(TrafficRequest("sig", count=1, external_node="node-1"))
    assert len(dials.loops) == 1  # nothing was sent from the nodes


# -- --pods local end to end: root, network namespaces, a kernel tracking SCTP (item 5) ----------
@needs_netns
@pytest.mark.netns
@pytest.mark.skipif(sctp_unsupported() is not None, reason=str(sctp_unsupported()))
def test_sctp_services_pass_on_the_standin_in_the_kubelet_less_mode(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    """A fixed sequence on the kube target with `--pods local` (no `--kube-sctp`: the local
    kernel is known) and the stand-in proxy: an SCTP Service gets two endpoints, one is made
    unready, the other killed (refused at once). Every verdict holds, and the SCTP Service was
    reached through the node's rules from the client namespaces (`sctp-reached`)."""
    sequence = [
        CreateService("sig", WEB, target_port=SCTP_PORT_NAME, protocol=Protocol.SCTP),
        Scale("web", 2),
        SetReady("web-0", False),
        DeletePod("web-1", grace_s=0),
    ]
    _, results = run_on_standin(
        mock_api.url, cluster, sequence, lambda t: generates_sctp(t) and not t.placement.sctp
    )
    assert [(v.property, v.message) for r in results for v in r.failures()] == []
    assert "reject-when-empty" in {v.property for r in results for v in r.verdicts}
    assert any("sctp-reached" in r.checked for r in results)


def test_a_timeout_may_be_the_reject_an_sctp_dial_cannot_see() -> None:
    """`reject-when-empty` on the kube target's SCTP samples (`refusals_unseen`): a timeout is
    taken as a possible refusal and the verdict says so; an answer still fails; a sample of
    any other client still needs the refusal."""
    from harness.checks.traffic import check_reject

    def sample(body: str, count: int) -> TrafficSample:
        def answer(where: str, argv: Sequence[str], timeout_s: float) -> str:
            return body

        request = TrafficRequest("sig", count=count, timeout_s=1.0)
        return send_batch(answer, "harness-client-1", request, "10.96.0.7", 80, RealClock())

    silent = sample(CUT_BY_CURL * 2 + REFUSED, 3)
    assert silent.refusals_unseen == REFUSALS_UNSEEN
    verdict = check_reject("sig", (), silent)
    assert verdict.holds and "a refusal is not judged" in verdict.message
    assert not check_reject("sig", (), sample(CUT_BY_CURL + ANSWERED, 2)).holds
    assert not check_reject("sig", (), replace(silent, refusals_unseen=None)).holds
