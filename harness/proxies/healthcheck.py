"""The healthCheckNodePort, served by a kernel proxy as kube-proxy serves it (issue 11 item 3, I9).

kube-proxy's `ServiceHealthServer` (pkg/proxy/healthcheck/service_health.go) opens one HTTP
server per Service that has a healthCheckNodePort (a LoadBalancer under externalTrafficPolicy
Local: `SyncServices`, fed `svcPortMap.HealthCheckNodePorts()`), on every node address (all of
them, "0.0.0.0", when nodePortAddresses matches all), and tells each how many local ready
endpoints its Service has (`SyncEndpoints`, fed `EndpointsMap.LocalReadyEndpoints()`). Its
handler answers any request with `Content-Type: application/json`, `X-Content-Type-Options:
nosniff`, status 200 when that count is not 0 (and the proxy is healthy) and 503 otherwise, and
the body

    {"service": {"namespace": NS, "name": NAME}, "localEndpoints": N,
     "serviceProxyHealthy": true}

(indented with tabs). A Service that stops having the port has its server closed, releasing the
port; one whose port changes is closed and opened on the new one.

`HealthServer` does the same for one proxy instance, inside its node's network namespace: one
asyncio loop in one daemon thread that entered the namespace (so every socket it makes lives
there), started on the first Service that needs it. `sync(entries)` opens and closes listeners
and sets the counts, and returns once the loop has done it; a port that cannot be bound is left
closed and tried again by the next sync (kube-proxy logs it and retries too). It is bounded: at
most `MAX_CONNECTIONS` connections at once (more are closed unanswered), a request's header must
arrive within `READ_TIMEOUT_S` and fit `REQUEST_LIMIT` bytes, every call into the loop waits at
most `CALL_TIMEOUT_S`. It must never block a proxy's sync for longer than that, never listen
outside its namespace, and leaves nothing when closed: the thread and every socket end with
`close()` (and with the process, the thread being a daemon).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from harness.errors import EnvironmentProblem
from harness.local.names import netns_path
from harness.local.netns import listening_socket, setns
from harness.model.endpoints import local_ready_addresses
from harness.model.objects import EndpointSlice, Service

BIND_ADDRESS = "0.0.0.0"
"""kube-proxy listens on every node address when nodePortAddresses matches all (its default)."""
MAX_CONNECTIONS = 64
REQUEST_LIMIT = 8192
READ_TIMEOUT_S = 2.0
CALL_TIMEOUT_S = 5.0
_T = TypeVar("_T")


@dataclass(frozen=True)
class HealthEntry:
    """One Service's health check on one node: its port and its local ready endpoints."""

    namespace: str
    name: str
    port: int
    local_endpoints: int

    @property
    def status(self) -> int:
        """200 with a local ready endpoint, else 503 (the proxy itself is always healthy)."""
        return 200 if self.local_endpoints else 503


def health_entries(
    services: Iterable[Service],
    slices_of: Callable[[str], Iterable[EndpointSlice]],
    node: str,
    count: Callable[[Iterable[EndpointSlice], str], int] | None = None,
) -> dict[str, HealthEntry]:
    """The health checks `node`'s proxy serves for `services` (those it programs), by Service
    name: every Service with a healthCheckNodePort, counted by `count(slices, node)` (default:
    `local_ready_addresses`, as kube-proxy counts). Headless Services get none (kube-proxy skips
    them whole). Pure."""
    counted = count or (lambda slices, here: len(local_ready_addresses(slices, here)))
    return {
        service.name: HealthEntry(
            service.namespace,
            service.name,
            service.health_check_node_port,
            counted(slices_of(service.name), node),
        )
        for service in services
        if service.health_check_node_port is not None and service.cluster_ip not in ("", "None")
    }


def response(entry: HealthEntry) -> bytes:
    """The whole HTTP response kube-proxy's `hcHandler` gives for `entry` (module docstring)."""
    body = json.dumps(
        {
            "service": {"namespace": entry.namespace, "name": entry.name},
            "localEndpoints": entry.local_endpoints,
            "serviceProxyHealthy": True,
        },
        indent="\t",
    ).encode()
    reason = "OK" if entry.status == 200 else "Service Unavailable"
    head = (
        f"HTTP/1.1 {entry.status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class HealthServer:
    """The health checks of one proxy instance in namespace `netns` (module docstring).

    `sync` and `close` may be called from any one thread at a time; `close` is idempotent and
    leaves nothing running. `listening` says which ports are served now; `failures` why a
    wanted port is not (one line each)."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.entries: dict[str, HealthEntry] = {}
        self.failures: dict[str, str] = {}
        self._servers: dict[str, tuple[int, asyncio.AbstractServer]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._active = 0

    @property
    def listening(self) -> dict[str, int]:
        """The port served for each Service now."""
        return {name: port for name, (port, _) in self._servers.items()}

    def sync(self, entries: Mapping[str, HealthEntry]) -> None:
        """Serve exactly `entries`: close the servers of Services gone or moved to another
        port, open the missing ones, and answer with the new counts from now on."""
        if not entries and self._loop is None:
            return
        self._call(lambda: self._sync(dict(entries)))

    def close(self) -> None:
        """Close every server and end the thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(lambda: self._sync({}))
        finally:
            self._loop, self._thread = None, None
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CALL_TIMEOUT_S)

    # -- the loop's side ----------------------------------------------------------------------
    async def _sync(self, entries: dict[str, HealthEntry]) -> None:
        self.entries = entries
        for name, (port, server) in list(self._servers.items()):
            if name not in entries or entries[name].port != port:
                server.close()  # the listening socket is closed at once: the port is free
                del self._servers[name]
        self.failures = {}
        for name, entry in sorted(entries.items()):
            if name in self._servers:
                continue
            try:
                self._servers[name] = (entry.port, await self._listen(name, entry.port))
            except OSError as error:
                self.failures[name] = f"port {entry.port}: {error.strerror or error}"

    async def _listen(self, name: str, port: int) -> asyncio.AbstractServer:
        """A server answering for Service `name` on `port` in the loop's namespace; OSError
        (nothing left open) when the port cannot be had."""
        sock = listening_socket(BIND_ADDRESS, port)
        try:
            return await asyncio.start_server(
                partial(self._answer, name), sock=sock, limit=REQUEST_LIMIT
            )
        except BaseException:
            sock.close()
            raise

    async def _answer(
        self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Read one request's header (any method and path, as kube-proxy's handler) and answer
        with the Service's entry as it is now; anything malformed or slow is closed unanswered."""
        self._active += 1
        try:
            if self._active > MAX_CONNECTIONS:
                return
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            entry = self.entries.get(name)
            if entry is None:  # closed meanwhile ("Received request for closed healthcheck")
                return
            writer.write(response(entry))
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            self._active -= 1
            writer.close()

    # -- the thread ---------------------------------------------------------------------------
    def _call(self, make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        loop = self._running_loop()
        future = asyncio.run_coroutine_threadsafe(make(), loop)
        try:
            return future.result(timeout=CALL_TIMEOUT_S)
        except TimeoutError:
            future.cancel()
            raise EnvironmentProblem(
                f"the health-check server in {self.netns} did not answer within"
                f" {CALL_TIMEOUT_S:.0f} s"
            ) from None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The loop, its thread started inside the namespace on first use."""
        if self._loop is not None:
            return self._loop
        loop = asyncio.new_event_loop()
        entered: Future[None] = Future()

        def serve() -> None:
            try:
                setns(netns_path(self.netns))
            except OSError as error:
                entered.set_exception(error)
                loop.close()
                return
            entered.set_result(None)
            asyncio.set_event_loop(loop)
            try:
                loop.run_forever()
            finally:  # answers still running end unanswered, then the loop goes
                left = asyncio.all_tasks(loop)
                for task in left:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
                loop.close()

        thread = threading.Thread(target=serve, name=f"health {self.netns}", daemon=True)
        thread.start()
        try:
            entered.result(timeout=CALL_TIMEOUT_S)
        except OSError as error:
            raise EnvironmentProblem(
                f"cannot serve health checks in namespace {self.netns}: {error}"
            ) from None
        self._loop, self._thread = loop, thread
        return loop
