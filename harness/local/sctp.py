"""SCTP in the embedded cluster: just enough of it for a Service proxy to be judged (issue 12
item 3).

What a Service proxy does with SCTP is the kernel's netfilter work: conntrack tracks the
association from its INIT, DNAT picks an endpoint for the INIT, the INIT-ACK is translated back
to the VIP, a REJECT answers with an ICMP port unreachable. Only the first exchange of an
association matters for that, so a pod "serves SCTP" by answering an INIT, and a client probe
is one INIT and its answer, never a whole association:

- **raw mode** (`SctpMode.RAW`: the kernel has no SCTP socket layer, `harness.protocols`): with
  no SCTP stack, the kernel hands every incoming SCTP packet to the raw sockets of its
  protocol and sends no ICMP. A pod's responder (`Responder`) is one raw socket in the pod's
  namespace: an INIT to one of its SCTP container ports gets an INIT-ACK whose State Cookie holds
  the pod's identity and the address the INIT came from (`POD UID ADDRESS`, as the UDP server's
  answer); an INIT to any other port gets an ABORT, as an SCTP stack answers an INIT it cannot
  take (RFC 9260 §8.4 rule 3: the INIT's Initiate Tag as the Verification Tag, T bit clear).
  Every other packet is dropped, as out-of-the-blue ABORTs must be (§8.4 rule 2). A client
  probe (`probe`) sends an INIT from a fresh source port (a new conntrack entry each probe,
  `harness.local.udp.fresh_port`) on a raw socket *connected* to the VIP, so the kernel reports
  the ICMP port unreachable of a REJECT on it as ECONNREFUSED; it reads the INIT-ACK (the
  identity) or an ABORT (refused, `ConnectionRefusedError`), or waits until its caller's
  timeout (a DROP); after an INIT-ACK it sends an ABORT carrying the peer's tag, so conntrack
  closes the entry at once. A raw socket sees every SCTP packet of its namespace from the VIP:
  the probe keeps only those addressed to its own ports and tag. Two probes at once from one
  source address to one VIP both see an ICMP error meant for either (the kernel matches ICMP
  errors to raw sockets by addresses only); the harness's parallel probes of one Service
  port are all rejected or all not, so this does not mislead it.
- **socket mode** (`SctpMode.SOCKET`: the kernel has SCTP sockets, and its stack would answer
  INITs with ABORTs itself): pods and clients use real one-to-one SCTP sockets
  (`socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)`), the TCP path's code with the protocol number
  changed (`stream_protocol`), HTTP over the association. This kernel has no SCTP sockets, so
  that path is not run by the tests here.

CRC32c (RFC 9260 Appendix A; the Castagnoli polynomial, reflected, 0x82F63B78) must be right:
conntrack verifies it before it tracks a packet. Wire format: RFC 9260 §3 (common header,
chunks padded to 4 bytes) and §3.3.2-3.3.3, §3.3.7 (INIT, INIT-ACK, ABORT).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from harness.local.netns import entered
from harness.protocols import SctpMode, sctp_mode

IPPROTO_SCTP = 132
SCTP_MODE = "sctp"
"""The pod server's mode of an SCTP container port in raw mode (`harness.local.podserver`), and
a client batch's protocol."""
SCTP_STREAM_MODE = "sctp-stream"
"""The pod server's mode of an SCTP container port in socket mode: HTTP over an association."""
INIT, INIT_ACK, ABORT = 1, 2, 6
STATE_COOKIE = 7
"""The INIT-ACK parameter that carries the cookie (RFC 9260 §3.3.3.1)."""
WINDOW = 65535
STREAMS = 1
MAX_PACKET_BYTES = 2048
_HEADER = struct.Struct("!HHII")  # source port, destination port, verification tag, checksum
_CHUNK = struct.Struct("!BBH")  # type, flags, length
_INIT_BODY = struct.Struct("!IIHHI")  # initiate tag, a_rwnd, out streams, in streams, first TSN
_PARAMETER = struct.Struct("!HH")  # type, length


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """The CRC32c of `data` (RFC 3720 B.4: 32 zero bytes give 0x8A9136AA). Pure."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@dataclass(frozen=True)
class Chunk:
    """One chunk: its type, flags and value (the bytes after its 4-byte header, unpadded)."""

    type: int
    flags: int
    value: bytes


@dataclass(frozen=True)
class Packet:
    """One SCTP packet: the common header's ports and verification tag, and its chunks."""

    source_port: int
    destination_port: int
    tag: int
    chunks: tuple[Chunk, ...]

    def encode(self) -> bytes:
        """The packet on the wire, its checksum computed (CRC32c over the packet with the
        checksum field zero, stored little-endian as RFC 9260 Appendix A's code does)."""
        body = b"".join(_chunk_bytes(c) for c in self.chunks)
        header = _HEADER.pack(self.source_port, self.destination_port, self.tag, 0)
        checksum = crc32c(header + body)
        return header[:8] + struct.pack("<I", checksum) + body

    def first(self, chunk_type: int) -> Chunk | None:
        """The packet's first chunk if it is of `chunk_type` (INIT, INIT-ACK and ABORT come
        first, INIT and INIT-ACK alone)."""
        return self.chunks[0] if self.chunks and self.chunks[0].type == chunk_type else None


def _chunk_bytes(chunk: Chunk) -> bytes:
    length = _CHUNK.size + len(chunk.value)
    return _CHUNK.pack(chunk.type, chunk.flags, length) + chunk.value + b"\0" * (-length % 4)


def decode(data: bytes) -> Packet | None:
    """The SCTP packet `data` holds (no IP header), or None for anything malformed: too
    short, a wrong checksum, a chunk longer than the packet. Pure; never raises."""
    if len(data) < _HEADER.size:
        return None
    source_port, destination_port, tag, _ = _HEADER.unpack_from(data)
    (checksum,) = struct.unpack_from("<I", data, 8)
    if crc32c(data[:8] + b"\0\0\0\0" + data[12:]) != checksum:
        return None
    chunks = []
    offset = _HEADER.size
    while offset + _CHUNK.size <= len(data):
        chunk_type, flags, length = _CHUNK.unpack_from(data, offset)
        if length < _CHUNK.size or offset + length > len(data):
            return None
        chunks.append(Chunk(chunk_type, flags, data[offset + _CHUNK.size : offset + length]))
        offset += length + (-length % 4)
    return Packet(source_port, destination_port, tag, tuple(chunks))


def from_ip(datagram: bytes) -> tuple[str, Packet | None]:
    """The source address and SCTP packet of an IPv4 datagram as a raw socket reads it (IP
    header included). Pure; never raises ("" and None for a datagram too short)."""
    if len(datagram) < 20:
        return "", None
    header_bytes = (datagram[0] & 0x0F) * 4
    return socket.inet_ntoa(datagram[12:16]), decode(datagram[header_bytes:])


def init(source_port: int, port: int, initiate_tag: int) -> Packet:
    """An INIT from `source_port` to `port` (verification tag 0, RFC 9260 §8.5.1 A)."""
    body = _INIT_BODY.pack(initiate_tag, WINDOW, STREAMS, STREAMS, initiate_tag)
    return Packet(source_port, port, 0, (Chunk(INIT, 0, body),))


def init_tag(packet: Packet) -> int | None:
    """The Initiate Tag of the packet's INIT or INIT-ACK chunk, or None."""
    chunk = packet.first(INIT) or packet.first(INIT_ACK)
    if chunk is None or len(chunk.value) < _INIT_BODY.size:
        return None
    return int(_INIT_BODY.unpack_from(chunk.value)[0])


def init_ack(to: Packet, initiate_tag: int, cookie: bytes) -> Packet:
    """The INIT-ACK answering the INIT `to`: the INIT's Initiate Tag as its verification tag,
    ports swapped, `cookie` in a State Cookie parameter."""
    length = _PARAMETER.size + len(cookie)
    parameter = _PARAMETER.pack(STATE_COOKIE, length) + cookie + b"\0" * (-length % 4)
    body = _INIT_BODY.pack(initiate_tag, WINDOW, STREAMS, STREAMS, initiate_tag) + parameter
    chunk = Chunk(INIT_ACK, 0, body)
    return Packet(to.destination_port, to.source_port, init_tag(to) or 0, (chunk,))


def cookie(packet: Packet) -> bytes | None:
    """The State Cookie of the packet's INIT-ACK, or None."""
    chunk = packet.first(INIT_ACK)
    if chunk is None:
        return None
    offset = _INIT_BODY.size
    while offset + _PARAMETER.size <= len(chunk.value):
        kind, length = _PARAMETER.unpack_from(chunk.value, offset)
        if length < _PARAMETER.size:
            return None
        if kind == STATE_COOKIE:
            return chunk.value[offset + _PARAMETER.size : offset + length]
        offset += length + (-length % 4)
    return None


def abort(source_port: int, port: int, peer_tag: int) -> Packet:
    """An ABORT from `source_port` to `port` carrying the peer's tag (T bit clear)."""
    return Packet(source_port, port, peer_tag, (Chunk(ABORT, 0, b""),))


# -- the pod's responder (raw mode) ---------------------------------------------------------------
def answer(packet: Packet, served: frozenset[int], identity: bytes, seen: str) -> Packet | None:
    """What a pod serving SCTP on the ports `served` answers to `packet` from address `seen`:
    an INIT-ACK with `identity` and `seen` in its cookie to an INIT to a served port, an ABORT to
    an INIT to any other port, nothing to anything else. Pure."""
    tag = init_tag(packet) if packet.first(INIT) and packet.tag == 0 else None
    if tag is None:
        return None
    if packet.destination_port not in served:
        return abort(packet.destination_port, packet.source_port, tag)
    return init_ack(packet, _new_tag(), identity + b" " + seen.encode())


def _new_tag() -> int:
    return secrets.randbelow(0xFFFFFFFE) + 1  # a tag is never 0 (RFC 9260 §3.3.2)


def responder_socket(netns: str) -> socket.socket:
    """A non-blocking raw SCTP socket inside namespace `netns` (a path): it reads every SCTP
    packet that reaches the namespace. ValueError for an empty `netns`: a responder never runs
    in the harness's own namespace (it would answer the machine's SCTP)."""
    if not netns:
        raise ValueError("an SCTP responder runs in a pod's namespace, never in the harness's own")
    with entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_SCTP)
    sock.setblocking(False)
    return sock


class Responder:
    """One pod's SCTP ports in raw mode: reads its raw socket on the event loop and answers
    (`answer`); `on_answer` is called for each INIT-ACK sent (the pod's answer count)."""

    def __init__(self, sock: socket.socket, identity: bytes, on_answer: Callable[[], None]) -> None:
        self.sock = sock
        self.identity = identity
        self.on_answer = on_answer
        self.served: frozenset[int] = frozenset()

    def serve(self, port: int) -> None:
        """Answer INITs to `port` too; the first port starts reading."""
        if not self.served:
            asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)
        self.served |= {port}

    def _readable(self) -> None:
        for datagram in self._pending():
            seen, packet = from_ip(datagram)
            reply = answer(packet, self.served, self.identity, seen) if packet else None
            if packet is None or reply is None:
                continue
            with contextlib.suppress(OSError):  # a reply that cannot leave is a lost packet
                self.sock.sendto(reply.encode(), (seen, 0))
            if reply.first(INIT_ACK):
                self.on_answer()

    def _pending(self) -> Iterator[bytes]:
        for _ in range(64):  # bounded per wake-up; the loop calls again while more wait
            try:
                yield self.sock.recv(MAX_PACKET_BYTES)
            except OSError:  # nothing more waiting (EAGAIN), or the socket is gone
                return

    def close(self) -> None:
        with contextlib.suppress(ValueError, RuntimeError):
            if self.served:
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


# -- the client's probe (raw mode) ----------------------------------------------------------------
def probe_socket(source: str | None, address: str) -> socket.socket:
    """A non-blocking raw SCTP socket bound to `source` (None: the kernel picks) and connected to
    `address`, so that ICMP errors about packets to it are reported on it; in the caller's
    namespace."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_SCTP)
    try:
        sock.setblocking(False)
        if source:
            sock.bind((source, 0))
        sock.connect((address, 0))
    except OSError:
        sock.close()
        raise
    return sock


async def probe(sock: socket.socket, source_port: int, port: int) -> bytes:
    """Send an INIT from `source_port` to `port` on the connected raw `sock` and return the
    State Cookie of the INIT-ACK that answers it (after aborting the association);
    ConnectionRefusedError for an ABORT or an ICMP port unreachable. Packets for other probes
    are skipped. The caller bounds the wait."""
    loop = asyncio.get_running_loop()
    tag = _new_tag()
    await loop.sock_sendall(sock, init(source_port, port, tag).encode())
    while True:
        _, packet = from_ip(await loop.sock_recv(sock, MAX_PACKET_BYTES))
        if packet is None or (packet.source_port, packet.destination_port) != (port, source_port):
            continue
        if packet.tag != tag:
            continue
        if packet.first(ABORT):
            raise ConnectionRefusedError("the endpoint aborted the association")
        peer_tag, found = init_tag(packet), cookie(packet)
        if peer_tag is not None and found is not None:
            await loop.sock_sendall(sock, abort(source_port, port, peer_tag).encode())
            return found


# -- the mode ------------------------------------------------------------------------------------
@functools.cache
def run_mode() -> SctpMode:
    """This process's SCTP mode, read once (`harness.protocols.sctp_mode`)."""
    return sctp_mode()


def stream_protocol(protocol: str) -> int:
    """The protocol number a stream socket for a Service port of `protocol` (lower case) is
    opened with: SCTP's in socket mode, else 0 (TCP)."""
    return IPPROTO_SCTP if protocol == SCTP_MODE else 0
