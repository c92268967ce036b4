"""UDP requests from the kube target's client pods: a bounded `nc` loop (issue 12 items 1-2).

The client pods run the agnhost image (Alpine, with OpenBSD netcat as `nc`, busybox `sh` and
`timeout`); the backend pods' netexec answers the datagram `hostname` with the pod's hostname
(`NAME--UID`) and `clientip` with the address it saw (`host:port`), on each UDP container port
(`harness.kube.objects.pod_manifest`). Upstream's conntrack e2e sends the same way
(test/e2e/network/conntrack.go: `echo hostname | nc -u -w 5 -p 12345 IP PORT`).

A UDP "connection" is a conntrack flow, its 5-tuple. So every request leaves from a source port
the harness chooses (`nc -p`): a fresh request from the next port of `FRESH_PORTS`, in turn (a
new flow: no recent one used the port), a held flow from its fixed port
(`harness.local.udp.held_port`, upstream's 12345 and on). `FRESH_PORTS` lies below Linux's
default ephemeral range (32768-60999), so on a hostNetwork client, which shares its node's
ports, no socket the kernel handed out holds one.

One request: `echo hostname | timeout T nc -u -W 1 -w W -p PORT IP PORT`, which prints the one
answer datagram and exits (`-W 1`), and then, with `report_source`, `clientip` from the same
source port (the same flow, so the same pod). T is the request timeout in whole seconds, rounded
up (`whole_seconds`: busybox's `timeout` counts whole seconds), W two seconds more. Classified
from the exit code and the answer:

- an answer: the backend (`traffic.parse_answer`);
- nothing and exit 0: nc ended by itself before the timeout, which for a connected UDP socket
  happens only on an ICMP error the kernel reports as fatal: port unreachable (a REJECT, what a
  Service without endpoints must give; `refused`), or an administratively prohibited one (a
  REJECT of another type), which nc does not tell apart (it prints nothing and exits 0 on any
  socket error: netcat-openbsd 1.219, `readwrite`'s POLLERR). Non-fatal ICMP errors (host
  unreachable, TTL exceeded) are not reported on the socket at all, so a route that loops times
  out here, as it does for the local cluster's UDP client;
- exit 124 (coreutils `timeout`), 143 or 137 (busybox's, killed by SIGTERM or SIGKILL):
  `timeout`, nothing came back within T (`nc -w` is longer, so only `timeout` ends a silent
  flow);
- anything else (nc or timeout missing, the source port taken): `other`.

Each request prints one line, `= PORT CODE T0 T1 ANSWER SOURCE` (T0 and T1 the shell's
`$EPOCHREALTIME` around the first nc, busybox ash's and bash's microsecond clock, else `date
+%s`; `-` for an empty answer or source), so requests sent at once (`parallel`) are matched to
their ports, whatever order their lines come in. A batch ends within `count * T` (twice that with
`report_source`), one T (two) in parallel, plus the exec overhead.

`build_command` and `parse_output` are pure; `send_batch` sends a batch of either protocol
through an exec function. Traffic goes only to the addresses the caller gives (a ClusterIP of
the run, a mapped node's InternalIP).
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import secrets
from collections.abc import Sequence

from harness.clock import Clock
from harness.errors import UsageError
from harness.kube.traffic import (
    EXEC_OVERHEAD_S,
    Exec,
    exec_sample,
    parse_answer,
    parse_peer,
    run_batch,
)
from harness.model.objects import Backend
from harness.traffic import ErrorKind, Outcome, TrafficRequest, TrafficSample

UDP = "UDP"
TCP = "TCP"
FRESH_PORTS = range(20000, 32768)
"""Source ports of fresh flows, in turn (module docstring): 12,768 ports, so a port comes round
again only after that many fresh flows, minutes of kube batches (an entry lives 30 s, 120 s once
assured)."""
RECORD = "="
TIMED_OUT = frozenset({124, 137, 143})
NO_VALUE = "-"
CLOCK = "${EPOCHREALTIME:-$(date +%s)}"

_fresh = itertools.count(secrets.randbelow(len(FRESH_PORTS)))


def fresh_ports(count: int) -> list[int]:
    """The next `count` source ports for fresh flows, in turn over `FRESH_PORTS`; one sequence
    for the whole process (`itertools.count` is atomic), starting at a random port, so a run
    started right after another does not send from the ports whose entries the last one left
    (a hostNetwork client's address and a node port are the same from run to run)."""
    return [FRESH_PORTS[next(_fresh) % len(FRESH_PORTS)] for _ in range(count)]


def build_command(
    ports: Sequence[int],
    address: str,
    port: int,
    timeout_s: float,
    report_source: bool = False,
    parallel: bool = False,
) -> list[str]:
    """The argv (`/bin/sh -c SCRIPT`) that sends one `hostname` datagram to `address:port` from
    each source port of `ports`, in turn (all at once with `parallel`), each within
    `timeout_s`; with `report_source` each flow that was answered also asks `clientip`.

    UsageError (one line) for an address that is not an IP address (it is put into a shell
    script), a port out of range, no ports, or a timeout that is not positive.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"not an IP address: {address!r}") from None
    numbers = [port, *ports]
    if not ports or not all(0 < n < 65536 for n in numbers) or not timeout_s > 0:
        raise UsageError(
            f"bad UDP request to {address}:{port} from ports {list(ports)} within {timeout_s}s:"
            " ports must be 1..65535 and the timeout positive"
        )
    wait_s = whole_seconds(timeout_s)
    nc = f"timeout {wait_s} nc -u -W 1 -w {wait_s + 2} -p $1 {ip} {port} 2>/dev/null"
    ask_source = (
        f's=$(echo clientip | {nc}); [ -n "$s" ] || s={NO_VALUE}; ' if report_source else ""
    )
    one = (
        f"r() {{ t0={CLOCK}; a=$(echo hostname | {nc}); c=$?; t1={CLOCK}; s={NO_VALUE};"
        f' if [ "$c" = 0 ] && [ -n "$a" ]; then {ask_source}:; else a={NO_VALUE}; fi;'
        f' echo "{RECORD} $1 $c $t0 $t1 $a $s"; }}; '
    )
    each = " ".join(str(p) for p in ports)
    send = "r $p &" if parallel else "r $p;"
    loop = f"for p in {each}; do {send} done; wait"
    return ["/bin/sh", "-c", f"{one}{loop}; true"]


def whole_seconds(timeout_s: float) -> int:
    """The request timeout as `timeout` is given it: whole seconds, rounded up (busybox's
    `timeout` counts whole seconds: 1.35 reads `1.5` as 1 and waits 1 s for `0.2`), so a flow
    waits at least `timeout_s`, and less than a second more."""
    return max(1, math.ceil(timeout_s))


def parse_output(output: str, ports: Sequence[int], timeout_s: float) -> list[Outcome]:
    """The outcomes, one per source port of `ports` in that order, from the output of
    `build_command`'s script (module docstring). A port without its line (the exec was cut
    short) is a timeout, so a batch always has `len(ports)` outcomes; lines that are not
    records, or name no port of the batch, are ignored."""
    records: dict[int, list[str]] = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 7 and fields[0] == RECORD and fields[1].isdigit():
            records.setdefault(int(fields[1]), fields)
    outcomes = []
    for index, source_port in enumerate(ports):
        record = records.get(source_port)
        if record is None:
            outcomes.append(Outcome(None, ErrorKind.TIMEOUT, timeout_s * 1000, index))
        else:
            outcomes.append(_outcome(record, index, timeout_s))
    return outcomes


def _outcome(fields: list[str], index: int, timeout_s: float) -> Outcome:
    """One request's outcome from its record's fields (`parse_output`)."""
    _, _, code_text, started, ended, answer, source = fields
    latency_ms = _elapsed_ms(started, ended, timeout_s)
    code = int(code_text) if code_text.isdigit() else -1
    if code in TIMED_OUT:
        return Outcome(None, ErrorKind.TIMEOUT, latency_ms, index)
    if code != 0:
        return Outcome(None, ErrorKind.OTHER, latency_ms, index)
    if answer == NO_VALUE:  # nc ended by itself without an answer: an ICMP error (a REJECT)
        return Outcome(None, ErrorKind.REFUSED, latency_ms, index)
    parsed = parse_answer(answer)
    if parsed is None:
        return Outcome(None, ErrorKind.OTHER, latency_ms, index)
    seen = parse_peer(source) if source != NO_VALUE else None
    return Outcome(Backend(*parsed), None, latency_ms, index, seen_source=seen)


def _elapsed_ms(started: str, ended: str, timeout_s: float) -> float:
    """Milliseconds between the two clock readings; the timeout when either is unreadable."""
    try:
        return max(0.0, (float(ended) - float(started)) * 1000)
    except ValueError:
        return timeout_s * 1000


def send_batch(
    exec_function: Exec,
    where: str,
    request: TrafficRequest,
    address: str,
    port: int,
    clock: Clock,
    protocol: str = TCP,
    report_source: bool = False,
    ports: Sequence[int] | None = None,
) -> TrafficSample:
    """One batch of `protocol` (a Service port's) from `where` (a client pod) to
    `address:port`, each request reported, timed on `clock`: TCP through `traffic.run_batch`'s
    curl loop; UDP as flows through the nc loop, fresh ones from `fresh_ports` or from the given
    source `ports` (a held flow's). Kept-alive UDP requests are fresh flows too (a UDP request
    has no connection to keep); `sources` other than the client's own are not offered. UsageError
    (one line) for any other protocol: this loop speaks TCP and UDP only (SCTP goes from the
    client pods through `harness.kube.sctp`, and never from the hostNetwork clients)."""
    if protocol == TCP:
        return run_batch(exec_function, where, request, address, port, clock, report_source)
    if protocol != UDP:
        raise UsageError(
            f"the kube target's curl and nc clients send TCP and UDP only, not {protocol!r}: SCTP"
            " goes only from the client pods with --kube-sctp, never from the hostNetwork clients"
        )
    chosen = list(ports) if ports is not None else fresh_ports(request.count)
    if not chosen:
        now_s = clock.now()
        return TrafficSample(request, (), now_s, now_s)
    parallel = request.parallel and not request.keep_alive
    argv = build_command(chosen, address, port, request.timeout_s, report_source, parallel)
    asks = 2 if report_source else 1
    wait_s = whole_seconds(request.timeout_s)
    budget_s = (1 if parallel else len(chosen)) * wait_s * asks + EXEC_OVERHEAD_S
    return exec_sample(
        exec_function,
        (where, argv, budget_s),
        request,
        clock,
        lambda output: parse_output(output, chosen, request.timeout_s),
    )
