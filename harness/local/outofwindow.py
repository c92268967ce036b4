"""An out-of-window TCP segment from inside a backend pod: upstream's e2e "boom" packet.

The e2e test "should drop INVALID conntrack entries" (test/e2e/network/conntrack.go, the
regression test of kubernetes#74839) runs a server pod (test/images/regression-issue-74839) that,
once a client's connection through a Service is established, sends the client a segment with a
sequence number far outside the window (`Seq: ack - 100000`, flags PSH|ACK, payload "boom!!!"),
and fails if the client then answers with RST. Conntrack on the node marks such a segment
INVALID; a proxy that does not drop INVALID packets lets it through untranslated, with the pod's
own address, so the client's stack knows no such connection and answers RST, and that RST resets
the pod's side (its sequence number is exactly what the pod expects). The client's next request
on the connection is then reset: a spurious RST on a long-running flow.

`send_out_of_window(pod_netns, pod_address)` does the same from inside a harness pod (a network
namespace: raw sockets work there as root) for every established connection the pod serves:

1. the pod's established connections on its listening ports, from `/proc/thread-self/net/tcp`
   inside its namespace (the client's address and port as the pod sees them: the harness's
   proxies do not masquerade Service traffic);
2. each connection's sequence numbers, which only the pod's stack knows: the harness hands the
   pod's stack, over its own loopback, a pure ACK that claims to come from the client with a
   sequence number outside the receive window; the stack answers with a duplicate ACK
   (RFC 793; `tcp_validate_incoming` -> `tcp_send_dupack`), which carries its next sequence
   number and the next one it expects, and which a packet socket in the namespace reads as it
   leaves `eth0` (the client gets that ACK through the proxy, as any ACK, and ignores it);
3. the "boom" segment, sent from the pod to the client: PSH|ACK, the acknowledgement the pod
   would send, a sequence number `OFFSET` (2^30) *above* the pod's next one. Upstream puts it
   100,000 below; kernels since 6.1 no longer mark a segment under the window's lower bound
   INVALID ("overly delayed" segments are ignored and passed on, translated), but still mark one
   above the receiver's window so, and 2^30 is above any window a TCP peer can advertise.

Only the pod's namespace is touched, and only with packets on the pod's own connections; bounded:
at most `MAX_CONNECTIONS` connections, each waited for at most `ACK_WAIT_S`.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from harness.local.netns import entered, in_thread

OFFSET = 1 << 30
PAYLOAD = b"out-of-window"
MAX_CONNECTIONS = 64
ACK_WAIT_S = 0.3
TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"
ETH_P_ALL = 0x0003  # a packet socket bound to one protocol sees only incoming packets
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
WINDOW = 502
_T = TypeVar("_T")


@dataclass(frozen=True)
class Connection:
    """One established connection the pod serves, as the pod sees it."""

    pod_address: str
    pod_port: int
    client_address: str
    client_port: int


@dataclass(frozen=True)
class Sent:
    """One out-of-window segment sent: its connection, and the pod's sequence numbers then."""

    connection: Connection
    next_seq: int
    next_ack: int


def send_out_of_window(pod_netns_path: str, pod_address: str) -> list[Sent]:
    """Send one out-of-window segment on every established connection the pod at
    `pod_address` serves (module docstring), from inside its namespace; return what was sent.
    A connection whose stack did not answer within `ACK_WAIT_S` is left alone. Changes nothing
    outside the pod's namespace; never raises for a pod without connections."""
    return in_thread(lambda: _inside(pod_netns_path, lambda: _send_all(pod_address)))


def _inside(path: str, work: Callable[[], _T]) -> _T:
    with entered(path):
        return work()


def _send_all(pod_address: str) -> list[Sent]:
    connections = established(pod_address)[:MAX_CONNECTIONS]
    if not connections:
        return []
    sent = []
    with _sockets() as (sender, watcher):
        for connection in connections:
            numbers = _sequence_numbers(sender, watcher, connection)
            if numbers is None:
                continue
            next_seq, next_ack = numbers
            boom = segment(
                connection.pod_address,
                connection.client_address,
                connection.pod_port,
                connection.client_port,
                (next_seq + OFFSET) % (1 << 32),
                next_ack,
                PSH | ACK,
                PAYLOAD,
            )
            sender.sendto(boom, (connection.client_address, 0))
            sent.append(Sent(connection, next_seq, next_ack))
    return sent


@contextmanager
def _sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A raw IP sender (we write the IP header) and a packet socket seeing every IP packet."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        watcher = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        try:
            watcher.setblocking(False)
            yield sender, watcher
        finally:
            watcher.close()
    finally:
        sender.close()


def established(pod_address: str) -> list[Connection]:
    """The established IPv4 TCP connections at `pod_address` on a port something listens on,
    read from the calling thread's namespace (`/proc/thread-self/net/tcp`)."""
    with open("/proc/thread-self/net/tcp") as table:
        rows = [line.split() for line in table.read().splitlines()[1:]]
    listening = {_hex_address(r[1])[1] for r in rows if len(r) > 3 and r[3] == TCP_LISTEN}
    found = []
    for row in rows:
        if len(row) <= 3 or row[3] != TCP_ESTABLISHED:
            continue
        (local, local_port), (remote, remote_port) = _hex_address(row[1]), _hex_address(row[2])
        if local == pod_address and local_port in listening:
            found.append(Connection(local, local_port, remote, remote_port))
    return sorted(found, key=lambda c: (c.client_address, c.client_port, c.pod_port))


def _hex_address(text: str) -> tuple[str, int]:
    address, port = text.split(":")
    return socket.inet_ntoa(bytes.fromhex(address)[::-1]), int(port, 16)


def _sequence_numbers(
    sender: socket.socket, watcher: socket.socket, connection: Connection
) -> tuple[int, int] | None:
    """The pod's next sequence number and the one it expects next on `connection`, read from
    the duplicate ACK its stack answers an unacceptable segment with; None if none came. Tries
    two sequence numbers half the space apart, so that one of them is outside the window."""
    _drain(watcher)
    for guess in (0x5EED0000, 0x5EED0000 + (1 << 31)):
        probe = segment(
            connection.client_address,
            connection.pod_address,
            connection.client_port,
            connection.pod_port,
            guess,
            0,
            ACK,
            b"",
        )
        sender.sendto(probe, (connection.pod_address, 0))
        answer = _await_ack(watcher, connection)
        if answer is not None:
            return answer
    return None


def _drain(watcher: socket.socket) -> None:
    while True:
        try:
            watcher.recv(65536)
        except BlockingIOError:
            return


def _await_ack(watcher: socket.socket, connection: Connection) -> tuple[int, int] | None:
    """The (seq, ack) of the next ACK the pod sends on `connection` out of a real interface."""
    deadline = time.monotonic() + ACK_WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([watcher], [], [], left)
        if not ready:
            return None
        try:
            packet, where = watcher.recvfrom(65536)
        except BlockingIOError:
            continue
        except OSError as error:
            if error.errno == errno.EINTR:
                continue
            raise
        if where[0] == "lo" or where[1] != ETH_P_IP or where[2] != PACKET_OUTGOING:
            continue
        parsed = parse_segment(packet)
        if parsed is None:
            continue
        source, destination, source_port, destination_port, seq, ack, flags = parsed
        if (
            (source, source_port, destination, destination_port)
            == (
                connection.pod_address,
                connection.pod_port,
                connection.client_address,
                connection.client_port,
            )
            and flags & ACK
            and not flags & (SYN | RST)
        ):
            return seq, ack
    return None


def parse_segment(packet: bytes) -> tuple[str, str, int, int, int, int, int] | None:
    """Addresses, ports, seq, ack and flags of an IPv4 TCP packet; None for anything else."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_TCP:
        return None
    header = (packet[0] & 0x0F) * 4
    if len(packet) < header + 20:
        return None
    source, destination = socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])
    ports_seq_ack = struct.unpack("!HHII", packet[header : header + 12])
    flags = packet[header + 13]
    return (source, destination, *ports_seq_ack, flags)


def segment(
    source: str,
    destination: str,
    source_port: int,
    destination_port: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes,
) -> bytes:
    """An IPv4 packet with one TCP segment (no options), checksums filled in."""
    src, dst = socket.inet_aton(source), socket.inet_aton(destination)
    tcp_header = struct.pack(
        "!HHIIBBHHH", source_port, destination_port, seq, ack, 5 << 4, flags, WINDOW, 0, 0
    )
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp_header + payload))
    check = checksum(pseudo + tcp_header + payload)
    tcp = tcp_header[:16] + struct.pack("!H", check) + tcp_header[18:] + payload
    total = 20 + len(tcp)
    ip_header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, socket.IPPROTO_TCP, 0, src, dst
    )
    ip_header = ip_header[:10] + struct.pack("!H", checksum(ip_header)) + ip_header[12:]
    return ip_header + tcp


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
