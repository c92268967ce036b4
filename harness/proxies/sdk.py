"""Write an external proxy in Python: the protocol spoken for you, the endpoints chosen for you.

An external proxy (docs/candidate-proxy.md) is a program that speaks protocol v1 on its stdin and
stdout. This module does the part every proxy shares, as kube-proxy's proxiers share the change
trackers and `CategorizeEndpoints`: it reads and validates each request, keeps the Services and
EndpointSlices, and on every `sync` hands the proxy the whole desired state, one `ServicePort`
per Service port with the endpoints new connections may use. The proxy writes its data plane:

    def program(ports: list[ServicePort]) -> None:  # or async def
        ...  # make the data plane match `ports`; return once new connections see it

    serve(program, start=on_hello, stop=on_shutdown)

Every request gets one reply: ok when the callback returns, an error (the exception in one line,
its traceback on stderr) when it raises, after which the proxy keeps serving. A request that is
not one (not UTF-8, not JSON, longer than `MAX_LINE_BYTES`, not valid against the schema, before
`hello`, a second `hello`) gets an error reply naming what is wrong, and the proxy keeps serving.
Callbacks may be plain functions or coroutine functions; they run on one asyncio event loop,
which the data plane may use for its own sockets. `serve` returns after `shutdown` is answered
or when stdin closes (then `stop` is still called).

Opt-out labels (I13): the harness hands over every Service with its labels, as a watch without
kube-proxy's label selector would, and `desired()` leaves out those labelled
`service.kubernetes.io/service-proxy-name` or `service.kubernetes.io/headless`, as kube-proxy's
informers do (`serve(..., honours_opt_out=False)` hands them over too, for a proxy that is
itself the one a `service-proxy-name` names). A proxy declares the `opt-out-labels` feature in
its `hello` reply to be handed labelled Services at all.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import math
import sys
import traceback
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, Any

from harness.model.endpoints import must_drop, usable_destinations
from harness.model.objects import Affinity, EndpointSlice, Service, opt_out_label
from harness.proxies.base import NodeContext
from harness.proxies.protocol import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    Message,
    ProtocolError,
    check_request,
    decode,
    endpoint_slice_from_json,
    node_from_json,
    service_from_json,
)

Address = tuple[str, int]
Program = Callable[[list["ServicePort"]], Awaitable[None] | None]
Start = Callable[[NodeContext], Awaitable[None] | None]
Stop = Callable[[], Awaitable[None] | None]


@dataclass(frozen=True)
class ServicePort:
    """What one Service port must do.

    `backends` are the (address, port) pairs new connections may go to, sorted: the usable
    endpoints (`CategorizeEndpoints`: ready ones, else serving-and-terminating ones, only this
    node's under internalTrafficPolicy=Local) at their slice's port for this port name. Empty
    means the port takes no new connection, in one of kube-proxy's two ways: REJECT (refuse at
    once) when `drops` is False, the Service having no endpoints at all; DROP (never answer: the
    client's connect times out) when `drops` is True, the Service having endpoints, none usable
    from this node (`hasAnyEndpoints`; `harness.proxies.dropping` drops from userspace).
    `affinity_timeout_s` is None unless the Service has ClientIP affinity.
    """

    service: str  # namespace/name
    name: str
    vip: str
    port: int
    protocol: str
    backends: tuple[Address, ...]
    affinity_timeout_s: int | None
    drops: bool = False

    @property
    def address(self) -> Address:
        """Where clients connect: (Service VIP, Service port)."""
        return (self.vip, self.port)


class Session:
    """One protocol session: the state the requests built and the proxy's callbacks."""

    def __init__(
        self,
        program: Program,
        start: Start | None = None,
        stop: Stop | None = None,
        honours_opt_out: bool = True,
    ):
        self.program, self.start, self.stop = program, start, stop
        self.honours_opt_out = honours_opt_out
        self.node: NodeContext | None = None
        self.services: dict[str, Service] = {}
        self.slices: dict[str, EndpointSlice] = {}
        self.done = False  # shutdown was requested: answer it, then stop reading

    def desired(self) -> list[ServicePort]:
        """Every Service port with its usable backends, in a stable order; none of an
        opted-out Service (module docstring) unless the session does not honour the labels."""
        assert self.node is not None
        slices_of: dict[tuple[str, str], list[EndpointSlice]] = defaultdict(list)
        for endpoint_slice in self.slices.values():
            slices_of[(endpoint_slice.namespace, endpoint_slice.service)].append(endpoint_slice)
        ports = []
        for key, service in sorted(self.services.items()):
            if self.honours_opt_out and opt_out_label(service) is not None:
                continue
            slices = slices_of[(service.namespace, service.name)]
            affinity = service.session_affinity == Affinity.CLIENT_IP
            for port in service.ports:
                destinations = usable_destinations(slices, service, port.name, self.node.node)
                ports.append(
                    ServicePort(
                        service=key,
                        name=port.name,
                        vip=service.cluster_ip,
                        port=port.port,
                        protocol=port.protocol,
                        backends=tuple(sorted({(d.address, d.port) for d in destinations})),
                        affinity_timeout_s=service.affinity_timeout_s if affinity else None,
                        drops=must_drop(destinations, slices, port.name),
                    )
                )
        return ports

    async def answer(self, line: str) -> Message:
        """The reply to one request line (see the module docstring)."""
        seq = None
        try:
            message = decode(line)
            seq = message.get("seq") if isinstance(message, dict) else None
            _check_version(message)
            check_request(message)
            await self.apply(message)
        except ProtocolError as error:
            return _error(seq, f"invalid request: {error}")
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            return _error(seq, f"{type(error).__name__}: {error}")
        return {"ok": True, "seq": seq}

    async def apply(self, message: Message) -> None:
        """Record a change, or call the proxy's callback for hello, sync and shutdown."""
        kind = message["type"]
        if kind != "hello" and self.node is None:
            raise ProtocolError(f"{kind} before hello")
        if kind == "hello" and self.node is not None:
            raise ProtocolError("a second hello in one session")
        if kind == "hello":
            self.node = node_from_json(message["node"])
            await _call(self.start, self.node)
        elif kind in ("service_add", "service_update", "service_delete"):
            service = service_from_json(message["service"])
            self._put(self.services, f"{service.namespace}/{service.name}", service, kind)
        elif kind in ("endpoint_slice_add", "endpoint_slice_update", "endpoint_slice_delete"):
            endpoint_slice = endpoint_slice_from_json(message["endpoint_slice"])
            key = f"{endpoint_slice.namespace}/{endpoint_slice.name}"
            self._put(self.slices, key, endpoint_slice, kind)
        elif kind == "sync":
            await _call(self.program, self.desired())
        elif kind == "shutdown":
            self.done = True
            await _call(self.stop)

    @staticmethod
    def _put(store: dict[str, Any], key: str, value: object, kind: str) -> None:
        if kind.endswith("_delete"):
            store.pop(key, None)
        else:
            store[key] = value


def serve(
    program: Program,
    *,
    start: Start | None = None,
    stop: Stop | None = None,
    stdin: IO[str] = sys.stdin,
    stdout: IO[str] = sys.stdout,
    honours_opt_out: bool = True,
) -> None:
    """Answer requests from `stdin` on `stdout` until `shutdown` or the end of `stdin`."""
    if isinstance(stdin, io.TextIOWrapper):
        stdin.reconfigure(errors="surrogateescape")  # bad bytes become an error reply
    asyncio.run(_serve(Session(program, start, stop, honours_opt_out), stdin, stdout))


async def _serve(session: Session, stdin: IO[str], stdout: IO[str]) -> None:
    loop = asyncio.get_running_loop()
    while (line := await loop.run_in_executor(None, _read_line, stdin)) != "":
        if line is None:
            reply = _error(None, f"invalid request: a line longer than {MAX_LINE_BYTES} bytes")
        else:
            reply = await session.answer(line)
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()
        if session.done:
            return
    await _call(session.stop)  # the harness went away without a shutdown: clean up anyway


def _read_line(stdin: IO[str]) -> str | None:
    """The next line of `stdin` ("" at its end); a line longer than MAX_LINE_BYTES is read to
    its end and given as None, so that it is answered as one bad request."""
    line = stdin.readline(MAX_LINE_BYTES + 1)
    if len(line) <= MAX_LINE_BYTES or line.endswith("\n"):
        return line
    while (rest := stdin.readline(MAX_LINE_BYTES)) and not rest.endswith("\n"):
        pass
    return None


async def _call(callback: Callable[..., Awaitable[None] | None] | None, *args: Any) -> None:
    if callback is not None:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result


def _check_version(message: Any) -> None:
    if isinstance(message, dict) and message.get("type") == "hello":
        version = message.get("protocol")
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"protocol {version!r}: this proxy speaks {PROTOCOL_VERSION}")


def _error(seq: object, text: str) -> Message:
    """An error reply, echoing `seq` when it is one (a JSON integer, 1 or more: 4.0 is one)."""
    reply: Message = {"ok": False, "error": " ".join(text.split())[:4096]}
    number = seq if isinstance(seq, int | float) and not isinstance(seq, bool) else 0
    integral = isinstance(number, int) or (math.isfinite(number) and number.is_integer())
    if integral and number >= 1:
        reply["seq"] = number
    return reply
