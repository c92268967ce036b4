"""SCTP requests from the kube target's client pods: one netexec `/dial` per request (issue 12
item 3, `--kube-sctp`).

With `--kube-sctp` the client pods run agnhost `netexec` on `CLIENT_DIAL_PORT` instead of
`pause` (`harness.kube.objects.client_pod_manifest`), and the backend pods serve each SCTP
container port with `netexec --sctp-port` (`_sctp_servers` there), which answers the message
`hostname` with the pod's hostname (`NAME--UID`). A request is one `curl` in the client pod to
its own netexec, `http://127.0.0.1:PORT/dial?request=hostname&protocol=sctp&host=IP&port=P&tries=1`:
netexec opens a fresh association (`dialSCTP`: a one-to-one SCTP socket, so a new INIT and a
new conntrack entry per request), sends `hostname` and answers JSON, as upstream's e2e
networking tests dial from a test container (`DialFromTestContainer`):

- `{"responses": ["NAME--UID"]}`: the backend (`traffic.parse_answer`);
- `{"errors": ["sctp dial failed. err:connection refused"]}`: ECONNREFUSED, an ABORT (no
  listener on the port): `refused`;
- an error naming a timeout (`connection timed out`, netexec's read deadline): `timeout`;
  `connection reset`: `reset`; anything else (a body that is not that JSON, curl failing to
  reach its own netexec): `other`.

Each curl has `--max-time` of the request timeout: the kernel retransmits an unanswered INIT
for minutes (net.sctp.max_init_retransmits), so a dropped INIT ends as curl's exit 28, a
`timeout` (netexec's own dial goes on in the background until the kernel gives up; it sends
only to the same address). What netexec cannot report: the ICMP port unreachable a REJECT
answers with, which the kernel gives an SCTP socket only as a soft error (`sctp_v4_err`,
without IP_RECVERR, which netexec does not set), so on the kube target an SCTP Service without
endpoints times out where the local cluster's raw client sees `refused` (docs/kube.md): every
sample says so (`TrafficSample.refusals_unseen`), and `reject-when-empty` takes a timeout there
as a possible refusal, saying so in its verdict.

A request prints its body, a newline, then `= EXITCODE SECONDS`; requests sent at once
(`parallel`) write files of their own, printed in send order. A batch ends within `count *
timeout_s` (one timeout in parallel) plus the exec overhead. `build_command` and `parse_output`
are pure; `send_batch` runs one batch through an exec function. Traffic goes only to the
address the caller gives (a ClusterIP of the run), through the client pod's own loopback.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from typing import Any

from harness.clock import Clock
from harness.errors import UsageError
from harness.kube.objects import CLIENT_DIAL_PORT
from harness.kube.traffic import EXEC_OVERHEAD_S, Exec, exec_sample, parse_answer
from harness.model.objects import Backend
from harness.traffic import ErrorKind, Outcome, TrafficRequest, TrafficSample

SCTP = "SCTP"
FLAG = "--kube-sctp"
HOST_SCTP = (
    "the hostNetwork clients send no SCTP: they run `pause` on the node's own network, where a"
    " netexec to dial from would bind a port of the node; SCTP node ports are not judged there"
)
"""Why an SCTP Service port is not sent to from the nodes (`KubeTarget.host_unsent`)."""
REFUSALS_UNSEEN = (
    "the kube target's SCTP client (netexec /dial) gets a REJECT's ICMP port unreachable as a"
    " soft error only, so it times out"
)
"""What the samples of `send_batch` say of a refusal (`TrafficSample.refusals_unseen`)."""
END = "="
CURL_TIMEOUT = 28
ERROR_KINDS = (
    ("connection refused", ErrorKind.REFUSED),
    ("timed out", ErrorKind.TIMEOUT),
    ("timeout", ErrorKind.TIMEOUT),
    ("connection reset", ErrorKind.RESET),
)
"""netexec's error text (Go's errno and net error strings, lowered) -> the outcome, first match."""


def dial_url(address: str, port: int) -> str:
    """The client pod's own netexec `/dial` URL for one SCTP request to `address:port`.
    UsageError (one line) for an address that is not an IP address or a port out of range."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"not an IP address: {address!r}") from None
    if not 0 < port < 65536:
        raise UsageError(f"bad SCTP port {port} for {address}: must be 1..65535")
    return (
        f"http://127.0.0.1:{CLIENT_DIAL_PORT}/dial?request=hostname&protocol=sctp"
        f"&host={ip}&port={port}&tries=1"
    )


def build_command(
    address: str, port: int, count: int, timeout_s: float, parallel: bool = False
) -> list[str]:
    """The argv (`/bin/sh -c SCRIPT`) that makes `count` SCTP requests to `address:port`
    through the client pod's netexec, one after another (all at once with `parallel`), each
    within `timeout_s`. UsageError (one line) for a bad address or port (`dial_url`), a count
    below one or a timeout that is not positive."""
    url = dial_url(address, port)
    if count < 1 or not timeout_s > 0:
        raise UsageError(
            f"bad SCTP batch to {address}:{port}: {count} request(s) within {timeout_s}s;"
            " the count must be at least 1 and the timeout positive"
        )
    write_out = f"\\n{END} %{{exitcode}} %{{time_total}}\\n"
    curl = f"curl -q -s -o - --max-time {timeout_s:g} -w '{write_out}' '{url}'"
    each = " ".join(str(i) for i in range(count))
    if not parallel:
        return ["/bin/sh", "-c", f"for i in {each}; do {curl}; done; true"]
    script = (
        f'd=$(mktemp -d) || exit 1; for i in {each}; do {curl} >"$d/$i" & done; wait;'
        f' for i in {each}; do cat "$d/$i"; done; rm -rf "$d"; true'
    )
    return ["/bin/sh", "-c", script]


def parse_output(output: str, count: int, timeout_s: float) -> list[Outcome]:
    """The `count` outcomes, in send order, from the output of `build_command`'s script: each
    request's body lines up to its `= EXITCODE SECONDS` line. Requests without their line (the
    exec was cut short) are timeouts, so a batch always has `count` outcomes."""
    outcomes: list[Outcome] = []
    body: list[str] = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == END and fields[1].isdigit():
            outcomes.append(_outcome("\n".join(body), int(fields[1]), fields[2], len(outcomes)))
            body = []
        elif line:
            body.append(line)
    outcomes = outcomes[:count]
    while len(outcomes) < count:
        outcomes.append(Outcome(None, ErrorKind.TIMEOUT, timeout_s * 1000, len(outcomes)))
    return outcomes


def _outcome(body: str, code: int, seconds: str, index: int) -> Outcome:
    """One request's outcome from its body and curl's exit code (module docstring)."""
    try:
        latency_ms = max(0.0, float(seconds) * 1000)
    except ValueError:
        latency_ms = 0.0
    if code == CURL_TIMEOUT:
        return Outcome(None, ErrorKind.TIMEOUT, latency_ms, index)
    answer = _json(body) if code == 0 else None
    if answer is None:
        return Outcome(None, ErrorKind.OTHER, latency_ms, index)
    responses, errors = answer.get("responses"), answer.get("errors")
    if isinstance(responses, list) and responses and isinstance(responses[-1], str):
        parsed = parse_answer(responses[-1])
        if parsed is not None:
            return Outcome(Backend(*parsed), None, latency_ms, index)
    if isinstance(errors, list) and errors and isinstance(errors[-1], str):
        return Outcome(None, error_kind(errors[-1]), latency_ms, index)
    return Outcome(None, ErrorKind.OTHER, latency_ms, index)


def error_kind(text: str) -> ErrorKind:
    """What one of netexec's `/dial` errors means (`ERROR_KINDS`; `other` for the rest)."""
    lowered = text.lower()
    return next((kind for mark, kind in ERROR_KINDS if mark in lowered), ErrorKind.OTHER)


def _json(body: str) -> dict[str, Any] | None:
    """`body` as a JSON object, or None for anything else."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def send_batch(
    exec_function: Exec,
    where: str,
    request: TrafficRequest,
    address: str,
    port: int,
    clock: Clock,
) -> TrafficSample:
    """One batch of SCTP requests from the client pod `where` to `address:port`, each a fresh
    association (kept-alive requests too: an association is not kept between requests), timed
    on `clock`. The source the pod saw is not reported (netexec's `/dial` asks one message
    per association), and the sample says a refusal is unseen (`REFUSALS_UNSEEN`)."""
    if request.count < 1:
        now_s = clock.now()
        return TrafficSample(request, (), now_s, now_s)
    parallel = request.parallel and not request.keep_alive
    argv = build_command(address, port, request.count, request.timeout_s, parallel)
    budget_s = (1 if parallel else request.count) * request.timeout_s + EXEC_OVERHEAD_S
    sample = exec_sample(
        exec_function,
        (where, argv, budget_s),
        request,
        clock,
        lambda output: parse_output(output, request.count, request.timeout_s),
    )
    return replace(sample, refusals_unseen=REFUSALS_UNSEEN)
