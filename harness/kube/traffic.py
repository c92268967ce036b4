"""Bounded request batches from client pods inside the cluster.

Each client (`client-1`, `client-2`, ... of `harness.traffic.CLIENTS`) is a pod of its own,
so each has its own source IP, as ClientIP session affinity needs. A batch is one exec into the
client pod running a bounded `curl` loop, the tool the upstream e2e affinity tests use
(test/e2e/network/service.go `execAffinityTestForNonLBService`: `curl -q -s --connect-timeout 2`):

- fresh connections (the default): one `curl` per request, so every request opens a new TCP
  connection and the proxy picks a backend for it (upstream's health-check helper disables
  keep-alive because reused connections "mask problems where the iptables rule has changed");
- keep-alive: `connections` curl processes, each fetching its share of the requests over one
  connection; request `i` uses connection `i % connections`;
- fresh and `parallel` (a sample the model expects dropped, or one a Service that missed its
  deadline is judged by): every curl at once, each writing to files of its own that are printed
  in send order afterwards, so the batch costs one request timeout and parses as the loop's.

Every curl has `--connect-timeout` and `--max-time` of `request.timeout_s`, so a batch ends within
`count * timeout_s` plus the exec overhead. Pods answer `/hostname` with `NAME--UID` (in the
kubelet-less mode the local cluster's pods answer `NAME UID`; both are read); curl's exit code
classifies failures (28 timeout, 52/55/56 reset). Exit 7 ("couldn't connect") covers a refusal
and "no route to host" alike, and a Service route that loops ends in the latter: so each curl
runs verbose into a scratch file, and the script prints the reason of every failed connect
(`! Connection refused`, from curl's `connect to ... failed: REASON` line) after the transfers.
Only ECONNREFUSED's reason is `refused` (what `reject-when-empty` accepts); any other reason,
or none, is `other` (issue 15: "never no route, a TTL expiry or a timeout").

Source reporting (`report_source`, fresh connections only): each curl asks `/hostname` and then,
over the same kept-alive connection (so of the same pod), agnhost netexec's `/clientip`, which
answers the peer address the pod saw (`host:port`); `--fail-early` stops a curl whose first
transfer failed, so a failed connect is still one attempt. The address becomes the outcome's
`seen_source` (what externalTrafficPolicy Local must keep: the client's own address). A pod that
does not answer `/clientip` with an address leaves it unknown (None), never an error.

`build_command` and `parse_output` are pure; `ClientPods` creates, waits for and execs into the
client pods. Traffic goes only to Service VIPs from pods in the harness's namespace. A UDP
Service port gets an `nc` loop instead (`harness.kube.udp`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import replace

from harness.clock import Clock
from harness.errors import UsageError
from harness.kube.objects import client_pod_manifest, parse_hostname
from harness.kube.scope import Scope
from harness.model.objects import Backend
from harness.traffic import ErrorKind, Outcome, TrafficRequest, TrafficSample

# pod name, argv, timeout in seconds -> stdout
Exec = Callable[[str, Sequence[str], float], str]

WRITE_OUT = r"\n%{exitcode} %{time_total}\n"
SOURCE_PATH = "/clientip"  # agnhost netexec: the peer address the pod saw, `host:port`
CONNECT_FAILED = 7  # curl: couldn't connect (the reason line says why)
REASON_MARK = "! "
# after each curl: the reason of each failed connect, in order (curl -v writes one per attempt)
REASONS = f"sed -n 's/^\\* connect to .* failed: /{REASON_MARK}/p' \"$e\""
EXEC_OVERHEAD_S = 15.0
NEW_NAMESPACE_WAIT_S = 30.0  # until the new namespace's default ServiceAccount exists
CURL_ERRORS = {
    28: ErrorKind.TIMEOUT,
    52: ErrorKind.RESET,
    55: ErrorKind.RESET,
    56: ErrorKind.RESET,
}


def build_command(
    request: TrafficRequest, address: str, port: int, report_source: bool = False
) -> list[str]:
    """The argv (`/bin/sh -c SCRIPT`) that sends `request` to `address:port` from a client;
    with `report_source` (fresh connections only; ignored with keep-alive) each connection also
    asks the pod which source it saw (module docstring).

    `address` must be an IP address (it is put into a shell script); UsageError otherwise.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"not an IP address: {address!r}") from None
    if request.count < 0 or not 0 < port < 65536 or request.connections < 1:
        raise UsageError(f"bad traffic request {request}")
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    url = f"http://{host}:{port}/hostname"
    urls = f"--fail-early {url} http://{host}:{port}{SOURCE_PATH}" if report_source else url
    timeout = f"{request.timeout_s:g}"
    curl = f"curl -q -s -v -o - --connect-timeout {timeout} --max-time {timeout} -w '{WRITE_OUT}'"
    start, end = "e=$(mktemp) || e=/dev/null; ", '; rm -f "$e"; true'
    if not request.keep_alive and request.parallel:
        # every curl at once, each into files of its own, printed afterwards in send order
        # with its reasons, exactly as the one-by-one loop prints them: one request timeout
        each = f'o="$d/$i"; e="$d/$i.e"; {curl} {urls} >"$o" 2>"$e"; {REASONS} >>"$o"'
        script = (
            f"d=$(mktemp -d) || exit 1; i=0; while [ $i -lt {request.count} ]; do ({each}) &"
            f' i=$((i+1)); done; wait; i=0; while [ $i -lt {request.count} ]; do cat "$d/$i";'
            ' i=$((i+1)); done; rm -rf "$d"; true'
        )
        return ["/bin/sh", "-c", script]
    if not request.keep_alive:
        script = (
            f'{start}i=0; while [ $i -lt {request.count} ]; do {curl} {urls} 2>"$e"; {REASONS};'
            f" i=$((i+1)); done{end}"
        )
        return ["/bin/sh", "-c", script]
    parts = []
    for connection in range(request.connections):
        share = len(range(connection, request.count, request.connections))
        if share:
            parts.append(f'{curl} {" ".join([url] * share)} 2>"$e"; {REASONS}')
    return ["/bin/sh", "-c", start + "; ".join(parts) + end]


def parse_output(
    output: str, request: TrafficRequest, report_source: bool = False
) -> list[Outcome]:
    """The outcomes, in send order, from the output of `build_command`'s script (built with the
    same `report_source`).

    Each transfer prints its body, a newline, then `EXITCODE TIME_S`; after each curl, a line
    `! REASON` per failed connect, given in order to the transfers that exited 7 and have none
    yet. With `report_source` (fresh connections) a connection whose `/hostname` transfer
    succeeded is followed by its `/clientip` transfer, whose address is the outcome's
    `seen_source`. Missing transfers (the exec was cut short) are reported as timeouts, so a
    batch always has `count` outcomes.
    """
    results = _transfers(output)
    seen: list[str | None] = [None] * len(results)
    if report_source and not request.keep_alive:
        results, seen = _pair_sources(results)
    order = _send_order(request)
    outcomes: list[Outcome | None] = [None] * request.count
    for position, index in enumerate(order):
        connection = index % request.connections if request.keep_alive else index
        if position < len(results):
            text, code, seconds = results[position]
            outcome = _outcome(text, code, seconds, connection)
            if outcome.backend is not None and seen[position] is not None:
                outcome = replace(outcome, seen_source=seen[position])
            outcomes[index] = outcome
        else:
            outcomes[index] = Outcome(None, ErrorKind.TIMEOUT, request.timeout_s * 1000, connection)
    return [o for o in outcomes if o is not None]


Transfer = tuple[str, int, float]
"""One curl transfer as the script printed it: body (or a failed connect's reason), curl's exit
code, seconds."""


def _transfers(output: str) -> list[Transfer]:
    """Every transfer of the script's output, in the order printed (`parse_output`)."""
    lines = output.split("\n")
    results: list[tuple[str, int, float]] = []
    unexplained: list[int] = []  # results that exited 7 and have no reason yet, oldest first
    body: list[str] = []
    for line in lines:
        fields = line.split()
        if line.startswith(REASON_MARK):
            if unexplained:  # a failed connect's text is its reason
                index = unexplained.pop(0)
                _, code, seconds = results[index]
                results[index] = (line[len(REASON_MARK) :], code, seconds)
        elif len(fields) == 2 and fields[0].isdigit() and _is_number(fields[1]):
            code = int(fields[0])
            results.append(
                ("\n".join(body) if code != CONNECT_FAILED else "", code, float(fields[1]))
            )
            if code == CONNECT_FAILED:
                unexplained.append(len(results) - 1)
            body = []
        elif line:
            body.append(line)
    return results


def _pair_sources(transfers: list[Transfer]) -> tuple[list[Transfer], list[str | None]]:
    """The connections' first transfers, and beside each the source its pod reported: a
    succeeded `/hostname` transfer is followed by its `/clientip` one (none after a failure:
    `--fail-early`)."""
    firsts: list[Transfer] = []
    sources: list[str | None] = []
    position = 0
    while position < len(transfers):
        first = transfers[position]
        firsts.append(first)
        position += 1
        source = None
        if first[1] == 0 and position < len(transfers):
            text, code, _ = transfers[position]
            source = parse_peer(text) if code == 0 else None
            position += 1
        sources.append(source)
    return firsts, sources


def parse_peer(text: str) -> str | None:
    """The address of a `/clientip` answer (`10.0.0.5:43210`, `[fd00::5]:43210`, as the e2e
    tests split it; a bare address is taken too), or None for anything else."""
    answer = text.strip()
    host, separator, port = answer.rpartition(":")
    candidates = [answer]
    if separator and port.isdigit():
        candidates.append(host.removeprefix("[").removesuffix("]"))
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def _send_order(request: TrafficRequest) -> list[int]:
    """Request indices in the order the script sends them."""
    if not request.keep_alive:
        return list(range(request.count))
    return [
        i for c in range(request.connections) for i in range(c, request.count, request.connections)
    ]


def _outcome(text: str, code: int, seconds: float, connection: int) -> Outcome:
    latency_ms = seconds * 1000
    if code == CONNECT_FAILED:  # `text` is the reason the connect failed ("" if none was given)
        refused = text.strip().lower() == "connection refused"
        return Outcome(
            None, ErrorKind.REFUSED if refused else ErrorKind.OTHER, latency_ms, connection
        )
    if code != 0:
        return Outcome(None, CURL_ERRORS.get(code, ErrorKind.OTHER), latency_ms, connection)
    parsed = parse_answer(text)
    if parsed is None:
        return Outcome(None, ErrorKind.OTHER, latency_ms, connection)
    return Outcome(Backend(*parsed), None, latency_ms, connection)


def parse_answer(text: str) -> tuple[str, str] | None:
    """(pod, uid) from a pod's answer: agnhost's hostname `NAME--UID`, or the local cluster's
    pod server identity `NAME UID` (the kubelet-less mode runs pods there)."""
    fields = text.split()
    if len(fields) == 2:
        return fields[0], fields[1]
    return parse_hostname(text)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def run_batch(
    exec_function: Exec,
    where: str,
    request: TrafficRequest,
    address: str,
    port: int,
    clock: Clock,
    report_source: bool = False,
) -> TrafficSample:
    """Run `request`'s loop through `exec_function` in `where` (a client pod, or a client
    namespace) and report every request, timed on `clock`; `report_source`: as
    `build_command` (each connection may make two transfers, so the budget doubles)."""
    argv = build_command(request, address, port, report_source)
    transfers = 2 if report_source else 1
    budget_s = request.count * request.timeout_s * transfers + EXEC_OVERHEAD_S
    return exec_sample(
        exec_function,
        (where, argv, budget_s),
        request,
        clock,
        lambda output: parse_output(output, request, report_source),
    )


def exec_sample(
    exec_function: Exec,
    call: tuple[str, Sequence[str], float],
    request: TrafficRequest,
    clock: Clock,
    parse: Callable[[str], list[Outcome]],
) -> TrafficSample:
    """Run one loop through `exec_function` (`call`: where, argv, budget in seconds), parse
    its output into `request`'s outcomes, timed on `clock`."""
    started_s = clock.now()
    outcomes = parse(exec_function(*call))
    return TrafficSample(request, tuple(outcomes), started_s, clock.now())


class ClientPods:
    """The client pods of one run: created by `start`, removed with the namespace.

    `send` changes no cluster state: it only execs a bounded loop in an existing client pod.
    """

    def __init__(self, scope: Scope, node: str | None, exec_function: Exec) -> None:
        self._scope = scope
        self._node = node
        self._exec = exec_function

    def pod_name(self, client_name: str) -> str:
        if client_name not in self._scope.clients:
            known = ", ".join(self._scope.clients)
            raise UsageError(f"unknown client {client_name!r}; known: {known}")
        return f"harness-{client_name}"

    def start(self) -> None:
        """Create the client pods (not waiting: `open` waits for every pod it needs)."""
        for client_name in self._scope.clients:
            manifest = client_pod_manifest(
                self.pod_name(client_name), self._scope.placement, self._node
            )
            self._scope.create_pod(manifest, self._scope.clock, NEW_NAMESPACE_WAIT_S)

    def send(self, request: TrafficRequest, address: str, port: int) -> TrafficSample:
        """Send one batch from `request.client` to `address:port` and report every request."""
        pod = self.pod_name(request.client)
        return run_batch(self._exec, pod, request, address, port, self._scope.clock)
