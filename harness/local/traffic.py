"""Bounded request batches from a client namespace.

Each client gets one `ClientAgent`: a daemon thread that entered the client's namespace once and
runs its own asyncio loop, so every socket it opens lives in that namespace (a socket keeps the
namespace of the thread that created it). No extra process, no per-batch `setns`. Measured on
the project machine (2 cores, shared with the pods and the proxy), one agent sends about 3,000
fresh connections a second straight to a pod, 2,700 through the iptables proxy, 1,150 through the
userspace proxy, and 17,000 requests a second over kept-alive connections through iptables.

A batch sends its requests one after another, which keeps round-robin and affinity observations
in send order. Every request is bounded by `timeout_s` (connect included), so a batch of `count`
requests ends within `count * timeout_s`; the agent also stops waiting after that plus a margin.

An agent also holds a few long-lived kept-alive connections open across batches (`hold`,
`ask_held`, `release_held`), each request on them bounded by its timeout: the harness's
established connections, asked once after every step (`harness.checks.connections`).

Outcomes: the backend a pod named in its answer (`POD UID`) and the source address it saw
(its `X-Source-Address` header, `harness.local.podserver`), or `refused` (ECONNREFUSED: the
REJECT a Service without endpoints must give), `reset` (ECONNRESET, or the peer closed before a
whole answer), `timeout`, or `other` (unreachable networks and anything else).

UDP (`Batch.protocol` "udp", `harness.local.udp`): a request is one datagram and its answer;
a fresh request is a new flow (a source port no recent flow used), a kept-alive "connection" a
flow that keeps its source port; a held UDP flow keeps its 5-tuple across steps (source port
`held_port(number)`). `refused` is the ICMP port-unreachable of a REJECT.

SCTP (`Batch.protocol` "sctp", `harness.local.sctp`): on a kernel without SCTP sockets a request
is one INIT from a fresh source port on a raw socket and its INIT-ACK, whose cookie names the pod
and the address it saw; `refused` is an ABORT or the ICMP port-unreachable of a REJECT. Every
request is a new association, kept alive or not (a kept-alive batch keeps only its source
address). On a kernel with SCTP sockets, a request is TCP's over an SCTP association.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.errors import EnvironmentProblem
from harness.local.names import netns_path
from harness.local.netns import setns
from harness.local.podserver import SOURCE_HEADER
from harness.local.sctp import SCTP_MODE, probe, probe_socket, run_mode, stream_protocol
from harness.local.udp import BIND_TRIES, ask, flow_socket, fresh_port, held_port
from harness.model.objects import Backend
from harness.protocols import SctpMode
from harness.traffic import ErrorKind, Outcome

BATCH_MARGIN_S = 5.0
MAX_ANSWER_BYTES = 65536
_REQUEST = b"GET / HTTP/1.1\r\nHost: service\r\nUser-Agent: harness\r\n"
_FRESH_REQUEST = _REQUEST + b"Connection: close\r\n\r\n"
_KEPT_REQUEST = _REQUEST + b"\r\n"
_T = TypeVar("_T")


class _Failed(Exception):
    def __init__(self, kind: ErrorKind) -> None:
        super().__init__(kind.value)
        self.kind = kind


def error_kind(error: BaseException) -> ErrorKind:
    """How a socket error shows in an outcome."""
    if isinstance(error, _Failed):
        return error.kind
    if isinstance(error, TimeoutError):
        return ErrorKind.TIMEOUT
    if isinstance(error, ConnectionRefusedError):
        return ErrorKind.REFUSED
    if isinstance(error, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return ErrorKind.RESET
    if isinstance(error, OSError) and error.errno == errno.ETIMEDOUT:
        return ErrorKind.TIMEOUT
    return ErrorKind.OTHER


def parse_identity(body: bytes) -> Backend:
    """The backend a pod's answer names: `POD UID`; anything else is a reset-like failure."""
    parts = body.decode(errors="replace").split()
    if len(parts) != 2:
        raise _Failed(ErrorKind.OTHER)
    return Backend(parts[0], parts[1])


@dataclass(frozen=True)
class Batch:
    """What to send: `count` requests to `address:port`, each within `timeout_s`.

    Fresh (`keep_alive` False): one new connection per request, request i bound to source
    address `sources[i mod len(sources)]` (none given: the kernel picks the client's own).
    Kept alive: `connections` connections, request i on connection i mod `connections`, all
    from the first source; a connection that fails is reopened for its next request. No
    request starts once `time_limit_s` has passed since the batch began. `parallel` (fresh
    batches only) opens every connection at once: the batch then lasts at most one `timeout_s`.
    """

    address: str
    port: int
    count: int
    keep_alive: bool = False
    connections: int = 1
    timeout_s: float = 2.0
    sources: tuple[str, ...] = ()
    time_limit_s: float | None = None
    parallel: bool = False
    protocol: str = "tcp"

    def source(self, index: int) -> str | None:
        return self.sources[index % len(self.sources)] if self.sources else None


class _Connection:
    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.loop = loop
        self.sock = sock
        self.buffer = b""
        self.seen_source: str | None = None  # what the pod saw of the last answer's connection

    @classmethod
    async def open(cls, batch: Batch, source: str | None) -> _Connection:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, stream_protocol(batch.protocol))
        sock.setblocking(False)
        try:
            if source:
                sock.bind((source, 0))
            await loop.sock_connect(sock, (batch.address, batch.port))
        except BaseException:
            sock.close()
            raise
        return cls(loop, sock)

    async def ask(self, request: bytes) -> Backend:
        await self.loop.sock_sendall(self.sock, request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            await self._fill()
        head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
        seen = _header(head, SOURCE_HEADER)
        self.seen_source = seen.decode(errors="replace") if seen else None
        length = _content_length(head)
        while len(self.buffer) < length:
            await self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return parse_identity(body)

    async def _fill(self) -> None:
        data = await self.loop.sock_recv(self.sock, MAX_ANSWER_BYTES)
        if not data:
            raise _Failed(ErrorKind.RESET)
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


class _UdpFlow:
    """A UDP flow in `_Connection`'s shape: `ask` sends one datagram and reads the answer,
    `POD UID ADDRESS` (`seen_source`: the address the pod saw)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seen_source: str | None = None

    @classmethod
    def open(cls, batch: Batch, source: str | None, source_port: int | None = None) -> _UdpFlow:
        """A flow from `source_port` (None: a fresh port, the next free one of `fresh_port`)."""
        tries = 1 if source_port is not None else BIND_TRIES
        for attempt in range(tries):
            port = source_port if source_port is not None else fresh_port()
            try:
                return cls(flow_socket(source, port, batch.address, batch.port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE or attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    async def ask(self, request: bytes) -> Backend:
        backend, self.seen_source = parse_seen(await ask(self.sock))
        return backend

    def close(self) -> None:
        self.sock.close()


class _SctpProbe:
    """SCTP in raw mode in `_Connection`'s shape: `ask` sends one INIT from a fresh source port
    and reads the INIT-ACK's cookie, `POD UID ADDRESS` (`seen_source`: the address the pod
    saw); an ABORT or an ICMP port-unreachable is `refused`."""

    def __init__(self, sock: socket.socket, port: int) -> None:
        self.sock = sock
        self.port = port
        self.seen_source: str | None = None

    @classmethod
    def open(cls, batch: Batch, source: str | None) -> _SctpProbe:
        return cls(probe_socket(source, batch.address), batch.port)

    async def ask(self, request: bytes) -> Backend:
        backend, self.seen_source = parse_seen(await probe(self.sock, fresh_port(), self.port))
        return backend

    def close(self) -> None:
        self.sock.close()


def parse_seen(answer: bytes) -> tuple[Backend, str | None]:
    """The backend and the address the pod saw of a datagram answer, `POD UID ADDRESS` (the
    address None when it is missing); a reset-like failure for anything else."""
    *identity, seen = answer.split(b" ") or [b""]
    backend = parse_identity(b" ".join(identity))
    return backend, seen.decode(errors="replace") if len(identity) == 2 else None


async def _open(batch: Batch, source: str | None) -> _Connection | _UdpFlow | _SctpProbe:
    """A new connection (TCP; SCTP in socket mode), flow (UDP) or INIT prober (SCTP in raw
    mode) for `batch` from `source`."""
    if batch.protocol == "udp":
        return _UdpFlow.open(batch, source)
    if batch.protocol == SCTP_MODE and run_mode() == SctpMode.RAW:
        return _SctpProbe.open(batch, source)
    return await _Connection.open(batch, source)


def _header(head: bytes, wanted: bytes) -> bytes | None:
    """The value of header `wanted` (any case) in an answer's head, or None."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == wanted.lower():
            return value.strip()
    return None


def _content_length(head: bytes) -> int:
    value = _header(head, b"content-length")
    if value is None:
        raise _Failed(ErrorKind.OTHER)
    return int(value)


def submit(
    loop: asyncio.AbstractEventLoop, make: Callable[[], Coroutine[Any, Any, _T]]
) -> Future[_T]:
    """`asyncio.run_coroutine_threadsafe(make(), loop)`, but the coroutine is made in the loop's
    own thread, once the loop gets to it: an interrupt (SIGINT) in the calling thread before that,
    or a loop stopped first, leaves no coroutine behind that was never awaited (Python warns of
    one at exit, on the stderr of a run that was asked to stop quietly). Cancelling the returned
    future cancels the task. It must not be called from the loop's own thread."""
    future: Future[_T] = Future()

    def copy(task: asyncio.Task[_T]) -> None:
        if future.cancelled():
            return
        try:
            if task.cancelled():
                future.cancel()
            elif (error := task.exception()) is not None:
                future.set_exception(error)
            else:
                future.set_result(task.result())
        except InvalidStateError:  # cancelled by the caller meanwhile
            pass

    def start() -> None:
        if future.cancelled():
            return
        task = loop.create_task(make())
        task.add_done_callback(copy)
        future.add_done_callback(
            lambda done: loop.call_soon_threadsafe(task.cancel) if done.cancelled() else None
        )

    loop.call_soon_threadsafe(start)
    return future


def _within_limit(batch: Batch, began: float, timer: Callable[[], float]) -> bool:
    return batch.time_limit_s is None or timer() - began < batch.time_limit_s


async def _fresh(batch: Batch, timer: Callable[[], float]) -> list[Outcome]:
    if batch.parallel:
        return list(
            await asyncio.gather(*(_one_fresh(batch, i, timer) for i in range(batch.count)))
        )
    outcomes = []
    began = timer()
    for index in range(batch.count):
        if not _within_limit(batch, began, timer):
            break
        outcomes.append(await _one_fresh(batch, index, timer))
    return outcomes


async def _one_fresh(batch: Batch, index: int, timer: Callable[[], float]) -> Outcome:
    """Request `index` of a fresh batch, on a connection of its own."""
    source = index % len(batch.sources) if batch.sources else 0
    started = timer()
    connection: _Connection | _UdpFlow | _SctpProbe | None = None
    try:
        async with asyncio.timeout(batch.timeout_s):
            connection = await _open(batch, batch.source(index))
            backend = await connection.ask(_FRESH_REQUEST)
        latency_ms = (timer() - started) * 1000
        return Outcome(backend, None, latency_ms, index, source, connection.seen_source)
    except (OSError, _Failed) as error:
        return Outcome(None, error_kind(error), (timer() - started) * 1000, index, source)
    finally:
        if connection is not None:
            connection.close()


async def _kept_alive(batch: Batch, timer: Callable[[], float]) -> list[Outcome]:
    slots: list[_Connection | _UdpFlow | _SctpProbe | None] = [None] * batch.connections
    outcomes = []
    began = timer()
    try:
        for index in range(batch.count):
            if not _within_limit(batch, began, timer):
                break
            slot = index % batch.connections
            started = timer()
            try:
                async with asyncio.timeout(batch.timeout_s):
                    if slots[slot] is None:
                        slots[slot] = await _open(batch, batch.source(0))
                    connection = slots[slot]
                    assert connection is not None
                    backend = await connection.ask(_KEPT_REQUEST)
                latency_ms = (timer() - started) * 1000
                outcomes.append(
                    Outcome(backend, None, latency_ms, slot, seen_source=connection.seen_source)
                )
            except (OSError, _Failed) as error:
                outcomes.append(Outcome(None, error_kind(error), (timer() - started) * 1000, slot))
                broken, slots[slot] = slots[slot], None
                if broken is not None:
                    broken.close()
    finally:
        for connection in slots:
            if connection is not None:
                connection.close()
    return outcomes


class ClientAgent:
    """Sends batches from inside one client namespace (None: the caller's own); a context
    manager that stops its thread.

    `run` may be called from any thread, one batch at a time per agent. It changes nothing but
    the client's own sockets.
    """

    def __init__(self, netns: str | None, timer: Callable[[], float] = time.perf_counter) -> None:
        self.netns = netns
        self.timer = timer
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._held: dict[int, _Connection | _UdpFlow] = {}
        self._next_held = 0

    def __enter__(self) -> ClientAgent:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        entered: Future[None] = Future()

        def serve() -> None:
            try:
                if self.netns:
                    setns(netns_path(self.netns))
            except OSError as error:
                entered.set_exception(error)
                return
            entered.set_result(None)
            asyncio.set_event_loop(self._loop)
            self._loop.run_forever()
            _finish(self._loop)

        self._thread = threading.Thread(target=serve, name=f"client {self.netns}", daemon=True)
        self._thread.start()
        try:
            entered.result(timeout=10)
        except OSError as error:
            raise EnvironmentProblem(
                f"cannot enter client namespace {self.netns}: {error}"
            ) from None

    def run(self, batch: Batch) -> list[Outcome]:
        """Send `batch`; returns one outcome per request, in send order."""
        if batch.count <= 0:
            return []
        if batch.keep_alive and batch.connections < 1:
            raise ValueError("a kept-alive batch needs at least one connection")
        sender = _kept_alive if batch.keep_alive else _fresh
        with self._lock:
            future = submit(self._loop, lambda: sender(batch, self.timer))
            bound_s = batch.count * batch.timeout_s + BATCH_MARGIN_S
            try:
                return future.result(timeout=bound_s)
            except TimeoutError:
                future.cancel()
                raise EnvironmentProblem(
                    f"a batch of {batch.count} requests did not end within {bound_s:.0f} s"
                ) from None
            except BaseException:
                future.cancel()  # interrupted: the batch stops with its caller
                raise

    # -- long-lived connections ---------------------------------------------------------------
    def hold(self, address: str, port: int, timeout_s: float) -> tuple[int | None, Outcome]:
        """Open a kept-alive connection to `address:port`, ask once, and keep it open across
        later batches: its number (None when the request failed: nothing is kept) and the
        outcome. Bounded by `timeout_s`."""
        number = self._next_held
        self._next_held += 1
        return self._call(lambda: self._hold(number, address, port, timeout_s), timeout_s)

    def hold_udp(self, address: str, port: int, timeout_s: float) -> tuple[int, Outcome]:
        """Open a UDP flow to `address:port` from the fixed source port `held_port(number)`,
        ask once, and keep it across later batches whatever the answer (a flow refused now must
        reach the endpoints the Service gets later: kubernetes#48370): its number and the
        outcome. `ask_held` asks on it again; a failed request does not forget it. Bounded by
        `timeout_s`; EnvironmentProblem if the source port is taken."""
        number = self._next_held
        self._next_held += 1
        return self._call(lambda: self._hold_udp(number, address, port, timeout_s), timeout_s)

    def ask_held(self, number: int, timeout_s: float) -> Outcome:
        """One request on held connection `number`, within `timeout_s`; a failed request closes
        the connection and forgets it (an unknown number is a closed connection: RESET); a held
        UDP flow stays held through failures."""
        return self._call(lambda: self._ask_held(number, timeout_s), timeout_s)

    def release_held(self) -> None:
        """Close every held connection. Idempotent."""
        if self._thread is not None and self._held:
            self._call(self._release, 1.0)

    def _call(self, make: Callable[[], Coroutine[Any, Any, _T]], timeout_s: float) -> _T:
        with self._lock:
            future = submit(self._loop, make)
            try:
                return future.result(timeout=timeout_s + BATCH_MARGIN_S)
            except TimeoutError:
                future.cancel()
                raise EnvironmentProblem(
                    f"a held connection's request did not end within {timeout_s:.0f} s"
                ) from None
            except BaseException:
                future.cancel()
                raise

    async def _hold(
        self, number: int, address: str, port: int, timeout_s: float
    ) -> tuple[int | None, Outcome]:
        started = self.timer()
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(timeout_s):
                connection = await _Connection.open(Batch(address, port, 1), None)
                backend = await connection.ask(_KEPT_REQUEST)
        except (OSError, _Failed) as error:
            if connection is not None:
                connection.close()
            return None, Outcome(None, error_kind(error), (self.timer() - started) * 1000, number)
        self._held[number] = connection
        return number, Outcome(backend, None, (self.timer() - started) * 1000, number)

    async def _hold_udp(
        self, number: int, address: str, port: int, timeout_s: float
    ) -> tuple[int, Outcome]:
        try:
            flow = _UdpFlow.open(Batch(address, port, 1, protocol="udp"), None, held_port(number))
        except OSError as error:
            raise EnvironmentProblem(
                f"cannot open a held UDP flow from port {held_port(number)}: {error}"
            ) from None
        self._held[number] = flow
        return number, await self._ask_held(number, timeout_s)

    async def _ask_held(self, number: int, timeout_s: float) -> Outcome:
        started = self.timer()
        connection = self._held.get(number)
        if connection is None:
            return Outcome(None, ErrorKind.RESET, 0.0, number)
        try:
            async with asyncio.timeout(timeout_s):
                backend = await connection.ask(_KEPT_REQUEST)
        except (OSError, _Failed) as error:
            if isinstance(connection, _UdpFlow):  # a flow keeps its 5-tuple through failures
                return Outcome(None, error_kind(error), (self.timer() - started) * 1000, number)
            del self._held[number]
            connection.close()
            return Outcome(None, error_kind(error), (self.timer() - started) * 1000, number)
        return Outcome(backend, None, (self.timer() - started) * 1000, number)

    async def _release(self) -> None:
        self._release_now()

    def close(self) -> None:
        """Stop the loop and its thread, cancelling a batch still running and closing every
        held connection. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._loop.call_soon_threadsafe(self._release_now)
        self._loop.call_soon_threadsafe(self._loop.stop)
        thread.join(5)

    def _release_now(self) -> None:
        held, self._held = self._held, {}
        for connection in held.values():
            connection.close()


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what still runs on the stopped `loop` (a batch its interrupted caller left), let it
    unwind, and close the loop: a task destroyed while pending would print a warning."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
