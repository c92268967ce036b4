"""`node-port`'s named part `health-check-node-port`: what every node's healthCheckNodePort
answers a load balancer's health check (issue 11 item 3, invariant I9).

kube-proxy serves, on every node, one HTTP server per LoadBalancer Service under
externalTrafficPolicy Local at its healthCheckNodePort (pkg/proxy/healthcheck/service_health.go):
200 while the node has a local *ready* endpoint, 503 otherwise, also when only terminating
endpoints are left there while they still serve (e2e "should fail health check node port if
there are only terminating endpoints"), with `localEndpoints` the number of those ready
endpoints (by address: `EndpointsMap.LocalReadyEndpoints`) and the Service's namespace and name
in its JSON body. A Service that stops being LoadBalancer + Local has its server closed: nothing
answers at its old port any more (a refused connection). The model says which
(`harness.model.endpoints.health_check_status`, `health_check_count`).

Pure: a function of the model's expectation per node and the reply one GET got there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.checks.external import PROPERTY
from harness.checks.verdict import Verdict, failed, passed
from harness.traffic import ErrorKind, HealthCheckReply

PART = "health-check-node-port"


@dataclass(frozen=True)
class HealthSample:
    """One GET to `node`'s `port`, which is (or was) Service `namespace/service`'s
    healthCheckNodePort, and what the model expects there: `status` and `count`
    (`localEndpoints`), or, with `status` None, that nothing listens (the port was released,
    or the Service is not the proxy's: its connection must be refused)."""

    service: str
    namespace: str
    node: str
    port: int
    status: int | None
    count: int | None
    reply: HealthCheckReply

    def problem(self) -> str | None:
        """What the reply got wrong, in a few words (None: nothing)."""
        got = self.reply
        if self.status is None:
            if got.error == ErrorKind.REFUSED:
                return None
            return f"answered {got.status or got.error} where nothing may listen (port released)"
        if got.status is None:
            return f"no answer ({got.detail or got.error})"
        if got.status != self.status:
            return f"status {got.status}, not {self.status}"
        if got.local_endpoints != self.count:
            return f"localEndpoints {got.local_endpoints}, not {self.count}"
        if got.service != (self.namespace, self.service):
            return f"the body names Service {got.service}, not {self.namespace}/{self.service}"
        return None

    def evidence(self) -> dict[str, Any]:
        got = self.reply
        return {
            "service": self.service,
            "node": self.node,
            "port": self.port,
            "expected": (
                "refused" if self.status is None else {"status": self.status, "count": self.count}
            ),
            "status": got.status,
            "error": got.error.value if got.error is not None else None,
            "local_endpoints": got.local_endpoints,
            "nosniff": got.nosniff,
            "detail": got.detail,
        }


def check_health(samples: Sequence[HealthSample]) -> Verdict | None:
    """One `node-port` verdict, part `health-check-node-port`, over one step's samples (None
    without any): it holds when every reply is what the model expects at its node. Evidence:
    every sample; the message names the first wrong node."""
    if not samples:
        return None
    evidence = {"part": PART, "samples": [s.evidence() for s in samples]}
    for sample in samples:
        problem = sample.problem()
        if problem is not None:
            return failed(
                PROPERTY,
                f"{sample.service}'s healthCheckNodePort {sample.port} at {sample.node}: {problem}"
                " (kube-proxy answers 200 only with a local ready endpoint, 503 otherwise, also"
                " when only terminating ones are left: I9)",
                **evidence,
            )
    return passed(
        PROPERTY,
        f"{len(samples)} health checks answered as the model says ({PART})",
        **evidence,
    )
