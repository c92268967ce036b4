"""UDP in the embedded cluster: the sockets a pod answers datagrams on and a client sends them
from.

A UDP "connection" is a conntrack flow: the 5-tuple (client address, client port, VIP, port,
protocol). kube-proxy DNATs the first datagram of a flow and conntrack sends every later one of
the same 5-tuple to the same endpoint until the entry expires (30 s without traffic) or is
deleted (`pkg/proxy/conntrack/cleanup.go`). So:

- a *fresh* UDP request (one probe of a sample) must leave from a source port that no recent
  flow used, or it is not a new flow and says nothing about the rules: `fresh_port` hands out
  ports in turn over `FRESH_PORTS` (41,000 ports, one sequence for every client: a port comes
  round again after 41,000 fresh flows, which the step samples of a few hundred take minutes
  to reach; a benchmark sending more than 41,000 in 30 s would reuse live entries);
- a *held* flow keeps its 5-tuple on purpose: upstream's conntrack e2e test sends from the
  fixed source port 12345 (`test/e2e/network/conntrack.go`); the harness's held flows use
  `HELD_PORT_BASE` + their number.

A request is one datagram (`PROBE`) answered by one datagram, the pod's identity and the
address it saw the datagram come from, `POD UID ADDRESS`.
Outcomes: the answer; `refused` when an ICMP port-unreachable comes back (the REJECT a Service
without endpoints must give for UDP too: kube-proxy's rule is not TCP-specific), read from the
connected socket as ECONNREFUSED; `timeout` when nothing comes back within the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket

from harness.local.names import netns_path
from harness.local.netns import entered, in_thread

UDP_MODE = "udp"
PROBE = b"who\n"
MAX_DATAGRAM_BYTES = 2048
FRESH_PORTS = range(20000, 61000)
HELD_PORT_BASE = 12345
HELD_PORTS = 1000
"""Held flow k leaves from port 12345 + k mod 1000 (upstream's conntrack e2e uses `-p 12345`)."""
BIND_TRIES = 8


def datagram_socket(address: str, port: int, netns: str | None = None) -> socket.socket:
    """A non-blocking UDP socket bound to `address:port`, made inside namespace `netns` (a path;
    None: the caller's own). The caller's thread is back in its namespace on return."""
    with entered(netns) if netns else contextlib.nullcontext():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


_fresh_ports = itertools.count()


def fresh_port() -> int:
    """The next source port for a fresh flow, in turn over `FRESH_PORTS` (module docstring);
    one sequence for the whole process (safe from any thread: `itertools.count` is atomic)."""
    return FRESH_PORTS[next(_fresh_ports) % len(FRESH_PORTS)]


def held_port(number: int) -> int:
    """The fixed source port of held flow `number`."""
    return HELD_PORT_BASE + number % HELD_PORTS


def flow_socket(source: str | None, source_port: int, address: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to `source:source_port` (no source: any address) and
    connected to `address:port`, so that ICMP errors for the flow are reported on it. A port
    in use raises OSError (EADDRINUSE): the caller picks another or fails the request."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((source or "0.0.0.0", source_port))
        sock.connect((address, port))
    except OSError:
        sock.close()
        raise
    return sock


def flow_socket_in(netns: str, source_port: int, address: str, port: int) -> socket.socket:
    """`flow_socket(None, source_port, address, port)` made inside namespace `netns` (a name),
    on a thread of its own that ends at once, so the caller's thread never changes namespace;
    the socket stays in `netns` for its life. ValueError for an empty `netns`: a benchmark's
    flows leave from a client namespace, never from the root one."""
    if not netns:
        raise ValueError("a UDP flow leaves from a client namespace, never from the root one")

    def make() -> socket.socket:
        with entered(netns_path(netns)):
            return flow_socket(None, source_port, address, port)

    return in_thread(make, timeout_s=10.0)


async def ask(sock: socket.socket) -> bytes:
    """Send one probe datagram on the connected `sock` and return the answer's payload.
    ConnectionRefusedError when an ICMP port-unreachable came back; the caller bounds the wait.
    Datagrams from an earlier, timed-out request still queued are skipped: only the answer to
    this probe counts, and a pod answers every probe with the same payload, so the last one
    queued is as good as any."""
    loop = asyncio.get_running_loop()
    while True:  # drop answers (and ICMP errors) that came after their request timed out
        try:
            sock.recv(MAX_DATAGRAM_BYTES)
        except BlockingIOError:
            break
        except ConnectionRefusedError:
            continue
    await loop.sock_sendall(sock, PROBE)
    return await loop.sock_recv(sock, MAX_DATAGRAM_BYTES)
