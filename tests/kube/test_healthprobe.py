"""The healthCheckNodePort probed on the kube target (`harness.kube.healthprobe`; issue 11 item 9,
invariant I9).

The probe script and its parsing (pure), the namespace mapping, and the runner over the kube
target on kmock with a fake data plane that serves kube-proxy's health server: a LoadBalancer
Service under externalTrafficPolicy Local (the only type upstream gives a healthCheckNodePort)
is asked at every node from the other node's client, judged by `node-port`'s part
`health-check-node-port` as on the local cluster; a proxy that counts terminating endpoints as
healthy fails it once only terminating ones are left (the e2e case).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakecluster import FakeCluster
from mockapi import MockApiServer
from test_external import WEB, Answers, make_addressed_nodes, open_target, opened

from harness.checks.health import PART
from harness.errors import UsageError
from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    SetExternalTrafficPolicy,
    SetServiceType,
)
from harness.healthchecks import ONLY_TERMINATING, judges_health
from harness.kube.api import Cluster
from harness.kube.healthprobe import build_command, in_model_terms, parse_output
from harness.model.objects import ServiceType, TrafficPolicy
from harness.registry import TargetOptions
from harness.targets.kube import KubeTarget
from harness.traffic import ErrorKind, HealthCheckReply, HealthCheckRequest

__all__ = ["opened"]  # the fixture, shared with test_external

REQUEST = HealthCheckRequest("node-1", 31000, 1.0)
BODY = {"service": {"namespace": "svc-lb-hk1", "name": "web"}, "localEndpoints": 2}


def answered(status: str, body: str, crlf: str = "\r\n") -> str:
    head = f"HTTP/1.1 {status}{crlf}X-Content-Type-Options: nosniff{crlf}{crlf}"
    return f"exit 0\n--- reply\n{head}{body}"


def test_the_probe_is_one_bounded_get_of_healthz_on_a_fresh_connection() -> None:
    argv = build_command(REQUEST, "172.18.0.3")
    script = argv[-1]
    assert argv[:2] == ["/bin/sh", "-c"]
    assert "http://172.18.0.3:31000/healthz" in script
    assert "--connect-timeout 1 --max-time 1" in script
    assert "Connection: close" in script and script.count("curl ") == 1
    with pytest.raises(UsageError, match="not an IP address"):
        build_command(REQUEST, "172.18.0.3; reboot")
    with pytest.raises(UsageError, match="bad health check request"):
        build_command(HealthCheckRequest("node-1", 0), "172.18.0.3")


@pytest.mark.parametrize("crlf", ["\r\n", "\n"])  # an exec stream may have lost the CRs
def test_an_http_answer_is_parsed_as_the_local_cluster_parses_it(crlf: str) -> None:
    reply = parse_output(REQUEST, answered("503 Service Unavailable", json.dumps(BODY), crlf))
    assert (reply.status, reply.local_endpoints, reply.nosniff) == (503, 2, True)
    assert reply.service == ("svc-lb-hk1", "web") and reply.error is None


@pytest.mark.parametrize(
    ("output", "error", "detail"),
    [
        ("exit 7\n! Connection refused\n--- reply\n", ErrorKind.REFUSED, "connection refused"),
        ("exit 7\n! No route to host\n--- reply\n", ErrorKind.OTHER, "no route to host"),
        ("exit 28\n--- reply\n", ErrorKind.TIMEOUT, "no answer within 1.0 s"),
        ("exit 56\n--- reply\n", ErrorKind.RESET, "curl exit code 56"),
        ("sh: curl: not found\n", ErrorKind.OTHER, "the probe printed 'sh: curl: not found'"),
    ],
)
def test_a_failed_probe_says_how(output: str, error: ErrorKind, detail: str) -> None:
    reply = parse_output(REQUEST, output)
    assert (reply.status, reply.error, reply.detail) == (None, error, detail)


def test_the_runs_namespace_is_renamed_the_models_and_no_other() -> None:
    reply = HealthCheckReply(REQUEST, 200, body=BODY)
    assert in_model_terms(reply, "svc-lb-hk1", "default").service == ("default", "web")
    assert in_model_terms(reply, "svc-lb-hk2", "default").service == ("svc-lb-hk1", "web")
    assert in_model_terms(replace_body(reply, None), "svc-lb-hk1", "default").body is None


def replace_body(reply: HealthCheckReply, body: Any) -> HealthCheckReply:
    return HealthCheckReply(reply.request, reply.status, body=body)


def test_the_target_asks_each_node_from_the_other_nodes_client(
    opened: tuple[KubeTarget, Answers, Cluster],
) -> None:
    target, answers, _ = opened
    assert judges_health(target)
    body = {**BODY, "service": {"namespace": target.namespace, "name": "web"}}
    answers.answer = lambda pod, script: answered("200 OK", json.dumps(body))
    reply = target.health_check(HealthCheckRequest("node-2", 31000, 1.0))
    pod, script = answers.loops[-1]
    assert pod == f"{target.prefix}-host-node-1" and "http://172.18.0.4:31000/healthz" in script
    assert reply.status == 200 and reply.service == ("default", "web")


def test_without_host_clients_the_target_says_why_it_cannot_ask(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    make_addressed_nodes(cluster)
    with FakeCluster(mock_api.url) as fake:
        options = TargetOptions(extra={"startup_s": 5, "host_clients": "off"})
        target = KubeTarget(options, cluster=cluster, pod_exec=fake.exec)
        target.open()
        try:
            with pytest.raises(UsageError, match="cannot ask health checks: the hostNetwork"):
                target.health_check(REQUEST)
        finally:
            target.close()


@pytest.mark.parametrize("mock_api", [{"graceful_pods": True}], indirect=True)
def test_the_runner_judges_the_health_check_node_port_on_the_kube_target(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    """A LoadBalancer Service under Local with its one endpoint on node-1: node-1 answers 200
    with one local endpoint and node-2 503 with none; once the endpoint only terminates (still
    serving), node-1 must answer 503 (I9), and everything holds. Then the data plane breaks
    (it counts serving terminating endpoints as healthy): node-1, asked again when node-2
    gains an endpoint, fails."""
    from harness.runner import RunConfig, Runner

    make_addressed_nodes(cluster)
    with open_target(mock_api.url, cluster) as (target, fake):
        fake.data_plane = True
        runner = Runner(target, RunConfig(deadline_s=5.0))
        steps = runner.run(
            [
                CreatePod("web-a", WEB),
                CreateService("web", WEB),
                SetServiceType("web", ServiceType.LOAD_BALANCER),
                SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL),
                DeletePod("web-a", grace_s=600.0),
            ]
        )
        fake.health_counts_terminating = True
        broken = runner.step(CreatePod("web-b", WEB, node="node-2"))  # node-1 asked again
    health = [v for step in steps for v in step.verdicts if v.evidence.get("part") == PART]
    assert health and all(v.holds for v in health), "the health check was not judged, or failed"
    assert [v.message for step in steps for v in step.failures()] == []
    assert ONLY_TERMINATING in steps[-1].checked
    (judged,) = [v for v in steps[3].verdicts if v.evidence.get("part") == PART]
    answers = judged.evidence["samples"]
    assert sorted((s["node"], s["status"], s["local_endpoints"]) for s in answers) == [
        ("node-1", 200, 1),
        ("node-2", 503, 0),
    ]
    failed = list(broken.failures())
    assert [v.property for v in failed] == ["node-port"]
    assert "healthCheckNodePort" in failed[0].message
    assert "at node-1: status 200, not 503" in failed[0].message
