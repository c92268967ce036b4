"""Asking a node's healthCheckNodePort from a hostNetwork client pod (issue 11 items 3 and 9; I9).

A cloud load balancer's health check asks every node's own address on the Service's
healthCheckNodePort; kube-proxy answers it (pkg/proxy/healthcheck/service_health.go) with 200
while the node has local ready endpoints and 503 otherwise, and a JSON body naming the Service
and its `localEndpoints`. On the kube target the same GET runs as one bounded `curl` in the
hostNetwork client pod of *another* node (`harness.kube.external.HostClients.ask_health`), to
the node's InternalIP, so it arrives from outside the node as the load balancer's would.

`build_command` and `parse_output` are pure. The reply is parsed as the local cluster's probe
parses it (`harness.local.healthprobe.parse_reply`), so both targets feed the one judge
(`harness.checks.health`, part `health-check-node-port`). `in_model_terms` renames the run's
namespace in the body back to the model's, as pods and nodes are mapped back; a body naming any
other namespace is left as it is (and judged wrong).

The command changes nothing: one GET with `--connect-timeout` and `--max-time`, on a fresh
connection (`Connection: close`), to an address the caller gives.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import replace

from harness.errors import UsageError
from harness.kube.traffic import (
    CONNECT_FAILED,
    CURL_ERRORS,
    EXEC_OVERHEAD_S,
    REASON_MARK,
    REASONS,
)
from harness.local.healthprobe import PATH, parse_reply
from harness.traffic import ErrorKind, HealthCheckReply, HealthCheckRequest

EXIT_MARK = "exit "
REPLY_MARK = "--- reply"
REFUSED_REASON = "Connection refused"
__all__ = ["EXEC_OVERHEAD_S", "build_command", "in_model_terms", "parse_output"]


def build_command(request: HealthCheckRequest, address: str) -> list[str]:
    """The argv (`/bin/sh -c SCRIPT`) of one GET of `PATH` at `address` on `request.port`,
    bounded by `request.timeout_s`: it prints `exit CODE`, the reason of a failed connect
    (`! REASON`), a `REPLY_MARK` line and the whole HTTP response (status line, headers, body).
    UsageError for an `address` that is not an IP address or a port outside 1..65535 (the
    address goes into a shell script)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"not an IP address: {address!r}") from None
    if not 0 < request.port < 65536 or request.timeout_s <= 0:
        raise UsageError(f"bad health check request {request}")
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    timeout = f"{request.timeout_s:g}"
    curl = (
        f"curl -q -s -i -v --http1.1 -H 'Connection: close' --connect-timeout {timeout}"
        f' --max-time {timeout} -o "$o" http://{host}:{request.port}{PATH}'
    )
    script = (
        f'o=$(mktemp) || exit 1; e="$o.e"; {curl} 2>"$e"; echo "{EXIT_MARK}$?"; {REASONS};'
        f' echo "{REPLY_MARK}"; cat "$o"; rm -f "$o" "$e"; true'
    )
    return ["/bin/sh", "-c", script]


def parse_output(request: HealthCheckRequest, output: str) -> HealthCheckReply:
    """The reply `output` (of `build_command`'s script) stands for: an HTTP answer parsed
    (`parse_reply`); refused only when curl's reason is ECONNREFUSED's (curl's exit 7 also
    covers "No route to host"); a timeout, a reset, or `ErrorKind.OTHER` with what was
    printed. Pure."""
    head, marked, response = output.partition(f"{REPLY_MARK}\n")
    lines = head.splitlines()
    code_text = next((line[len(EXIT_MARK) :] for line in lines if line.startswith(EXIT_MARK)), "")
    if not marked or not code_text.strip().isdigit():
        shown = output.strip().splitlines()[:1] or ["nothing"]
        return HealthCheckReply(
            request, None, ErrorKind.OTHER, detail=f"the probe printed {shown[0][:80]!r}"
        )
    code = int(code_text)
    reasons = [line[len(REASON_MARK) :] for line in lines if line.startswith(REASON_MARK)]
    if code == 0:
        wire = "\r\n".join(response.replace("\r\n", "\n").split("\n"))
        return parse_reply(request, wire.encode("utf-8", "replace"))
    if code == CONNECT_FAILED:
        reason = reasons[-1] if reasons else "couldn't connect, no reason given"
        kind = ErrorKind.REFUSED if reason.strip() == REFUSED_REASON else ErrorKind.OTHER
        return HealthCheckReply(request, None, kind, detail=reason.strip().lower())
    kind = CURL_ERRORS.get(code, ErrorKind.OTHER)
    if kind == ErrorKind.TIMEOUT:
        return HealthCheckReply(
            request, None, kind, detail=f"no answer within {request.timeout_s} s"
        )
    return HealthCheckReply(request, None, kind, detail=f"curl exit code {code}")


def in_model_terms(
    reply: HealthCheckReply, namespace: str, model_namespace: str
) -> HealthCheckReply:
    """`reply` with the run's `namespace` in its body's `service` renamed `model_namespace`
    (the model knows no run namespaces); any other body unchanged. Pure."""
    body = reply.body
    found = (body or {}).get("service")
    if body is None or not isinstance(found, Mapping) or found.get("namespace") != namespace:
        return reply
    renamed = {**body, "service": {**found, "namespace": model_namespace}}
    return replace(reply, body=renamed)
