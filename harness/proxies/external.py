"""`ExternalProxy`: a candidate proxy in any language, run as a command speaking JSON lines.

The command (`--proxy-command 'CMD ARGS'`) runs as `sh -c CMD` inside the node's network
namespace, as root (it programs its own data plane there), with its stderr in
`NODE.workdir/external-proxy.log`.
The harness writes requests on its stdin and reads one reply line per request from its stdout
(protocol v1, harness/schemas/proxy-protocol.json, see docs/candidate-proxy.md):

    hello -> service_* / endpoint_slice_* (the changes since the last sync, in order) -> sync
    ... -> shutdown

Both directions are validated against the schema. Handlers only queue messages (the Proxy
contract says they must not program anything); `sync()` sends the queue, then `sync`, and returns
once the proxy answered. A proxy that exits, stays silent past a timeout, or answers anything but a
valid reply raises `ProxyFailure` (a Violation, exit 1) with its stderr tail; the proxy is then
stopped and every later call raises the same failure.
"""

from __future__ import annotations

import os
import select
import time
from dataclasses import dataclass
from typing import IO, NoReturn

from harness.errors import UsageError
from harness.model.objects import EndpointSlice, Service
from harness.proxies.base import NodeContext, slice_key
from harness.proxies.failure import ProxyFailure
from harness.proxies.process import NetnsProcess, run_environment
from harness.proxies.protocol import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    Message,
    ProtocolError,
    check_request,
    encode,
    endpoint_slice_json,
    hello,
    parse_reply,
    service_json,
)
from harness.registry import TargetOptions

LOG_NAME = "external-proxy.log"


@dataclass(frozen=True)
class Timeouts:
    """How long the proxy may take to answer, by request kind, in seconds."""

    hello_s: float = 10.0
    message_s: float = 5.0
    sync_s: float = 30.0
    shutdown_s: float = 3.0

    def for_request(self, kind: str) -> float:
        return {"hello": self.hello_s, "sync": self.sync_s, "shutdown": self.shutdown_s}.get(
            kind, self.message_s
        )


class _Silent(Exception):
    """No complete reply line before the deadline."""


class _Closed(Exception):
    """The proxy closed its stdout (it exited or is exiting)."""


class _Lines:
    """Reads lines from a pipe with a deadline, without ever blocking past it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._fd = stream.fileno()
        self._buffer = b""

    def read(self, deadline_s: float) -> bytes:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE_BYTES:
                raise ProtocolError(f"reply line longer than {MAX_LINE_BYTES} bytes")
            left_s = deadline_s - time.monotonic()
            if left_s <= 0 or not select.select([self._fd], [], [], left_s)[0]:
                raise _Silent
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise _Closed
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def unsolicited(self) -> bytes:
        """Output that arrived without a request waiting for it (raises _Closed at EOF)."""
        if not self._buffer and select.select([self._fd], [], [], 0)[0]:
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise _Closed
            self._buffer += chunk
        return self._buffer


def _write(stream: IO[bytes], data: bytes, deadline_s: float) -> None:
    """Write all of `data`, or raise _Silent if the proxy stops reading until the deadline."""
    fd = stream.fileno()
    os.set_blocking(fd, False)
    view = memoryview(data)
    while view:
        left_s = deadline_s - time.monotonic()
        if left_s <= 0 or not select.select([], [fd], [], left_s)[1]:
            raise _Silent
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            raise _Closed from None


class ExternalProxy:
    """A proxy run as an external command that speaks the harness's JSON-lines protocol."""

    name = "external"
    description = "an external command speaking JSON lines (--proxy-command 'CMD ARGS')"

    def __init__(
        self,
        command: str,
        *,
        timeouts: Timeouts | None = None,
        enter_netns: bool = True,
    ) -> None:
        """`command` is a shell command line. `enter_netns=False` runs it in the harness's own
        namespace: only for tests of the protocol with proxies that touch no network."""
        if not command.strip():
            raise UsageError("--proxy-command is empty; give the command that starts your proxy")
        self.command = command
        self.timeouts = timeouts or Timeouts()
        self.enter_netns = enter_netns
        self.node: NodeContext | None = None
        self.shutdown_failure: ProxyFailure | None = None
        self._process: NetnsProcess | None = None
        self._lines: _Lines | None = None
        self._pending: list[Message] = []
        self._seq = 0
        self._failure: ProxyFailure | None = None
        self._services: dict[str, Service] = {}
        self._slices: dict[tuple[str, str], EndpointSlice] = {}

    @classmethod
    def from_options(cls, options: TargetOptions) -> ExternalProxy:
        """The proxy the command line asks for: `--proxy-command` is required."""
        if not options.proxy_command:
            raise UsageError(
                "the external proxy needs --proxy-command 'CMD ARGS' (see docs/candidate-proxy.md)"
            )
        return cls(options.proxy_command)

    # -- the Proxy contract -------------------------------------------------------------------
    def start(self, node: NodeContext) -> None:
        """Start the command in `node.netns` and complete the hello (within `timeouts.hello_s`).

        Starting again after `stop()` (a proxy restart) begins a fresh process and session, and
        queues an add for every Service and slice known so far, as kube-proxy re-lists after a
        restart; they are sent with the next `sync()`.
        """
        self.node = node
        self._failure = None
        self.shutdown_failure = None
        self._seq = 0
        self._pending = [
            *({"type": "service_add", "service": service_json(s)} for s in self._services.values()),
            *(
                {"type": "endpoint_slice_add", "endpoint_slice": endpoint_slice_json(s)}
                for s in self._slices.values()
            ),
        ]
        node.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **run_environment(node),
            "PYTHONUNBUFFERED": "1",
            "HARNESS_PROXY_PROTOCOL": str(PROTOCOL_VERSION),
            "HARNESS_NODE": node.node,
            "HARNESS_NETNS": node.netns,
            "HARNESS_WORKDIR": str(node.workdir),
            "HARNESS_SERVICE_CIDR": node.service_cidr,
        }
        self._process = NetnsProcess(
            ["sh", "-c", self.command],
            netns=node.netns if self.enter_netns else None,
            log=node.workdir / LOG_NAME,
            pipes=True,
            env=env,
        )
        self._process.start()
        self._lines = _Lines(self._process.stdout)
        self._request(hello(node))

    def on_service_add(self, service: Service) -> None:
        self._services[service.name] = service
        self._pending.append({"type": "service_add", "service": service_json(service)})

    def on_service_update(self, old: Service, new: Service) -> None:
        self._services[new.name] = new
        self._pending.append(
            {"type": "service_update", "old": service_json(old), "service": service_json(new)}
        )

    def on_service_delete(self, service: Service) -> None:
        self._services.pop(service.name, None)
        self._pending.append({"type": "service_delete", "service": service_json(service)})

    def on_endpoint_slice_add(self, endpoint_slice: EndpointSlice) -> None:
        self._slices[slice_key(endpoint_slice)] = endpoint_slice
        self._pending.append(
            {"type": "endpoint_slice_add", "endpoint_slice": endpoint_slice_json(endpoint_slice)}
        )

    def on_endpoint_slice_update(self, old: EndpointSlice, new: EndpointSlice) -> None:
        self._slices[slice_key(new)] = new
        self._pending.append(
            {
                "type": "endpoint_slice_update",
                "old": endpoint_slice_json(old),
                "endpoint_slice": endpoint_slice_json(new),
            }
        )

    def on_endpoint_slice_delete(self, endpoint_slice: EndpointSlice) -> None:
        self._slices.pop(slice_key(endpoint_slice), None)
        self._pending.append(
            {"type": "endpoint_slice_delete", "endpoint_slice": endpoint_slice_json(endpoint_slice)}
        )

    def sync(self) -> None:
        """Send every queued change, then `sync`; return once the proxy answered ok to all."""
        pending, self._pending = self._pending, []
        for message in pending:
            self._request(message)
        self._request({"type": "sync"})

    def stop(self) -> None:
        """Ask for `shutdown`, then TERM, then KILL the command's process group, and remove its
        log; returns within about `timeouts.shutdown_s` + 3 s and never raises. A proxy that did
        not shut down cleanly is recorded in `shutdown_failure` for the caller to report."""
        process, self._process = self._process, None
        if process is None:
            return
        if self._failure is None and process.alive():
            try:
                self._request({"type": "shutdown"}, process)
                process.wait(self.timeouts.shutdown_s)
            except ProxyFailure as failure:
                self.shutdown_failure = failure
        process.stop(grace_s=1.5)
        process.log.unlink(missing_ok=True)

    # -- one request, one reply ---------------------------------------------------------------
    def _request(self, message: Message, process: NetnsProcess | None = None) -> Message:
        if self._failure is not None:
            raise self._failure
        process = process or self._process
        if process is None or self._lines is None:
            raise RuntimeError("ExternalProxy used before start()")
        self._seq += 1
        message = {**message, "seq": self._seq}
        check_request(message)  # a failure here is a harness bug, not the proxy's
        kind, seq = message["type"], self._seq
        deadline_s = time.monotonic() + self.timeouts.for_request(kind)
        try:
            if extra := self._lines.unsolicited():
                raise ProtocolError(f"output nobody asked for: {extra[:80]!r}")
            _write(process.stdin, encode(message), deadline_s)
            reply = parse_reply(self._lines.read(deadline_s))
        except _Silent:
            limit_s = self.timeouts.for_request(kind)
            self._fail(process, f"did not answer {kind} #{seq} within {limit_s:g} s")
        except _Closed:
            code = process.returncode() if process.wait(0.5) else None
            self._fail(process, f"exited (code {code}) before answering {kind} #{seq}")
        except ProtocolError as error:
            self._fail(process, f"answered {kind} #{seq} with garbage: {error}")
        if reply.get("seq", seq) < seq:
            self._fail(
                process,
                f"answered {kind} #{seq} with garbage: output nobody asked for (a second reply"
                f" to #{reply['seq']}; answer each request exactly once)",
            )
        if reply.get("seq", seq) != seq:
            self._fail(process, f"answered {kind} #{seq} with the reply to #{reply['seq']}")
        if not reply["ok"]:
            self._fail(process, f"refused {kind} #{seq}: {reply['error']}")
        return reply

    def _fail(self, process: NetnsProcess, problem: str) -> NoReturn:
        """Record the failure, stop the proxy, and raise."""
        process.stop(grace_s=0.5)
        self._failure = ProxyFailure(self.name, problem, process.tail())
        raise self._failure from None
