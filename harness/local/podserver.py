"""One process that serves every pod: it enters each pod's namespace, opens the pod's listening
sockets there and answers on all of them from one asyncio loop.

Measured on the project machine: one process for 200 pods was ready in 0.43 s in 19 MB, where
one Python server per pod took 20 s and 10.6 MB each.

What a pod answers (its identity is `POD UID`, e.g. `web-0 u3`):

- `http` ports: any request gets `200 OK` with the identity as its body and the address the
  connection came from (its peer, as the pod saw it after any NAT) in an `X-Source-Address`
  header (`SOURCE_HEADER`); HTTP/1.1 keep-alive is honoured, `Connection: close` closes after
  the answer. Each pod counts its answers (`PodServer.counts`).
- `tcp` ports (a container port whose name starts with `tcp`): the identity and a newline at once
  on connect, and again for every line received.
- `udp` ports (a container port of protocol UDP, `harness.local.udp`): every datagram is answered
  by one datagram holding the identity and the sender's address as the pod saw it
  (`POD UID ADDRESS`), to its sender; counted with the HTTP answers.
- `sctp` ports (a container port of protocol SCTP, `harness.local.sctp`): on a kernel without
  SCTP sockets, one raw socket per pod answers an INIT to any of its SCTP ports with an INIT-ACK
  whose cookie is `POD UID ADDRESS` (counted with the others) and an INIT to any other port with
  an ABORT; never in the server's own namespace (a pod without one, the loopback variant, is
  refused). On a kernel with SCTP sockets, an SCTP port is an `http` port on an SCTP socket.

Control: JSON lines over stdin and stdout (`harness.local.control`); `PodServer` below is the
harness's handle. The server exits when stdin closes (or on SIGTERM), so a harness killed with
SIGKILL takes its pod server with it. Removing a pod closes its listening
sockets and aborts its open connections, as a killed container's would be, before the harness
deletes the pod's namespace.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

from harness.local.control import ControlledProcess, run_helper
from harness.local.netns import listening_socket
from harness.local.sctp import (
    IPPROTO_SCTP,
    SCTP_MODE,
    SCTP_STREAM_MODE,
    Responder,
    responder_socket,
    run_mode,
)
from harness.local.udp import UDP_MODE, datagram_socket
from harness.protocols import SctpMode

MAX_HEADER_BYTES = 65536
SOURCE_HEADER = b"X-Source-Address"


def port_mode(port_name: str, protocol: str = "TCP") -> str:
    """What a container port speaks: `udp` for a UDP port; for an SCTP port `sctp` (raw mode)
    or `sctp-stream` (HTTP over an SCTP socket), as this kernel allows (`harness.local.sctp`);
    else from its name, `tcp*` plain TCP, anything else HTTP."""
    if protocol == "UDP":
        return UDP_MODE
    if protocol == "SCTP":
        return SCTP_MODE if run_mode() == SctpMode.RAW else SCTP_STREAM_MODE
    return "tcp" if port_name.startswith("tcp") else "http"


@dataclass(frozen=True)
class PodSpec:
    """One pod incarnation for the server: where to listen and what to answer.

    `key` names the incarnation for later removal; `netns` is the namespace path to listen in
    (None: the server's own namespace, used by the loopback variant); `ports` are (port, mode).
    """

    key: str
    pod: str
    uid: str
    netns: str | None
    address: str
    ports: tuple[tuple[int, str], ...]


# -- the server process ---------------------------------------------------------------------------
class _Pod:
    def __init__(self, spec: PodSpec) -> None:
        self.spec = spec
        self.identity = f"{spec.pod} {spec.uid}".encode()
        self.servers: list[asyncio.Server] = []
        self.datagram_transports: list[asyncio.DatagramTransport] = []
        self.responder: Responder | None = None  # its SCTP ports, in raw mode
        self.transports: set[asyncio.BaseTransport] = set()
        self.answered = 0  # HTTP answers given since the last `counts` with reset

    def answers(self, peer: str) -> tuple[bytes, bytes]:
        """The kept-alive and the closing answer to a connection from `peer`."""
        return self._answer(b"keep-alive", peer), self._answer(b"close", peer)

    def _answer(self, connection: bytes, peer: str) -> bytes:
        body = self.identity
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: "
            + connection
            + b"\r\n"
            + SOURCE_HEADER
            + b": "
            + peer.encode()
            + b"\r\n\r\n"
            + body
        )

    def serve_sctp(self, port: int) -> None:
        """Answer INITs to `port` on this pod's raw SCTP socket (opened on its first port)."""
        if self.responder is None:
            sock = responder_socket(self.spec.netns or "")
            self.responder = Responder(sock, self.identity, self._count)
        self.responder.serve(port)

    def _count(self) -> None:
        self.answered += 1

    def close(self) -> None:
        for server in self.servers:
            server.close()
        for datagrams in self.datagram_transports:
            datagrams.abort()
        if self.responder is not None:
            self.responder.close()
        for transport in list(self.transports):
            transport.abort()  # type: ignore[attr-defined]
        self.transports.clear()


class _Connection(asyncio.Protocol):
    def __init__(self, pod: _Pod, mode: str) -> None:
        self.pod = pod
        self.mode = mode
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.keep_alive_answer = self.closing_answer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.pod.transports.add(transport)
        peer = transport.get_extra_info("peername")
        if self.mode == "http":
            self.keep_alive_answer, self.closing_answer = self.pod.answers(
                str(peer[0]) if peer else ""
            )
        if self.mode == "tcp":
            transport.write(self.pod.identity + b"\n")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.pod.transports.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if self.mode == "tcp":
            lines = self.buffer.count(b"\n")
            self.buffer = self.buffer[self.buffer.rfind(b"\n") + 1 :]
            self.transport.write((self.pod.identity + b"\n") * lines)
            return
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end].lower(), self.buffer[end + 4 :]
            closing = b"connection: close" in head or (
                head.startswith(b"get") and b"http/1.0" in head.split(b"\r\n", 1)[0]
            )
            self.pod.answered += 1
            if closing:
                self.transport.write(self.closing_answer)
                self.transport.close()
                return
            self.transport.write(self.keep_alive_answer)
        if len(self.buffer) > MAX_HEADER_BYTES:
            self.transport.abort()


class _Datagrams(asyncio.DatagramProtocol):
    """A pod's UDP port: each datagram answered with the identity and the address it came
    from, to its sender."""

    def __init__(self, pod: _Pod) -> None:
        self.pod = pod
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None:
            self.pod.answered += 1
            self.transport.sendto(self.pod.identity + b" " + str(addr[0]).encode(), addr)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for an answer (its client went away): nothing to do."""


class _Server:
    def __init__(self) -> None:
        self.pods: dict[str, _Pod] = {}

    async def add(self, specs: Iterable[PodSpec]) -> None:
        loop = asyncio.get_running_loop()
        for spec in specs:
            if spec.key in self.pods:
                raise ValueError(f"pod key {spec.key} is already served")
            pod = _Pod(spec)
            self.pods[spec.key] = pod
            for port, mode in spec.ports:
                if mode == UDP_MODE:
                    transport, _ = await loop.create_datagram_endpoint(
                        functools.partial(_Datagrams, pod),
                        sock=datagram_socket(spec.address, port, spec.netns),
                    )
                    pod.datagram_transports.append(transport)
                    continue
                if mode == SCTP_MODE:
                    pod.serve_sctp(port)
                    continue
                protocol = IPPROTO_SCTP if mode == SCTP_STREAM_MODE else 0
                sock = listening_socket(spec.address, port, spec.netns, protocol=protocol)
                speaks = "http" if mode == SCTP_STREAM_MODE else mode
                server = await loop.create_server(
                    functools.partial(_Connection, pod, speaks), sock=sock
                )
                pod.servers.append(server)

    def remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            pod = self.pods.pop(key, None)
            if pod is not None:
                pod.close()

    async def shutdown(self) -> None:
        """Stop serving every pod (the server is exiting)."""
        self.remove(list(self.pods))

    def stats(self) -> dict[str, Any]:
        connections = sum(len(p.transports) for p in self.pods.values())
        return {"pods": len(self.pods), "connections": connections}

    def counts(self, reset: bool) -> dict[str, Any]:
        answered = {key: pod.answered for key, pod in self.pods.items()}
        if reset:
            for pod in self.pods.values():
                pod.answered = 0
        return {"answered": answered}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "counts":
            return self.counts(bool(request.get("reset")))
        if op == "add":
            await self.add(_spec_from_json(item) for item in request["pods"])
        elif op == "remove":
            self.remove(request["keys"])
        elif op != "stats":
            raise ValueError(f"unknown op {op!r}")
        return self.stats()


def _spec_from_json(item: dict[str, Any]) -> PodSpec:
    ports = tuple((int(port), str(mode)) for port, mode in item["ports"])
    return PodSpec(item["key"], item["pod"], item["uid"], item["netns"], item["address"], ports)


def main() -> None:
    server = _Server()
    run_helper(server.handle, server.shutdown)


# -- the harness side -----------------------------------------------------------------------------
class PodServer(ControlledProcess):
    """The harness's handle on the pod server process; a context manager that stops it."""

    def __init__(self, prefix: str) -> None:
        super().__init__("pod server", "harness.local.podserver", [prefix], prefix)

    def __enter__(self) -> PodServer:
        self.start()
        return self

    def add(self, specs: Sequence[PodSpec]) -> None:
        """Serve these pods; EnvironmentProblem if a port cannot be opened (all-or-nothing is
        the caller's: a failed add may leave some of the pods served)."""
        if specs:
            self.request({"op": "add", "pods": [asdict(spec) for spec in specs]})

    def remove(self, keys: Sequence[str]) -> None:
        """Stop serving these pods: close their listening sockets, abort their connections."""
        if keys:
            self.request({"op": "remove", "keys": list(keys)})

    def stats(self) -> dict[str, Any]:
        """How many pods are served and how many connections are open."""
        return self.request({"op": "stats"})

    def counts(self, reset: bool = True) -> dict[str, int]:
        """HTTP and UDP answers each pod (by key) gave since the last reset; reset them to 0 if
        asked. Counting at the pods is how a long probe learns where its connections went without
        parsing every answer."""
        answered: dict[str, int] = self.request({"op": "counts", "reset": reset})["answered"]
        return answered


if __name__ == "__main__":
    main()
