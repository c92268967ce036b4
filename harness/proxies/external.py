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

import contextlib
import os
import select
import signal
import time
from dataclasses import dataclass
from typing import IO, NoReturn

from harness.documents import shorten
from harness.errors import UsageError
from harness.features import declared_features
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


class _TooLong(Exception):
    """A reply line longer than MAX_LINE_BYTES; `start` holds its first bytes."""

    def __init__(self, start: bytes) -> None:
        super().__init__()
        self.start = start


SHOWN_BYTES = 80


def shown(data: bytes) -> str:
    """What the proxy sent, quoted for a one-line message: its first SHOWN_BYTES bytes as a
    Python bytes literal (control and non-ASCII bytes escaped), and how long it was in all."""
    if len(data) <= SHOWN_BYTES:
        return repr(data)
    return f"{data[:SHOWN_BYTES]!r}... ({len(data):,} bytes)"


def reply_fix(seq: int) -> str:
    """What the proxy should have sent instead, for request `seq`."""
    return (
        f'it must answer each request with exactly one line on stdout, {{"ok": true, "seq": {seq}}}'
        f' or {{"ok": false, "seq": {seq}, "error": "why"}}, and flush it'
        " (docs/candidate-proxy.md, Replies)"
    )


class _Lines:
    """Reads lines from a pipe with a deadline, without ever blocking past it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._fd = stream.fileno()
        self._buffer = b""

    @property
    def partial(self) -> bytes:
        """What arrived of a line that has not ended yet."""
        return self._buffer

    def read(self, deadline_s: float) -> bytes:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE_BYTES:
                raise _TooLong(self._buffer[:SHOWN_BYTES])
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


def _ending(code: int | None) -> str:
    """How a process ended, from its return code (negative: the signal that killed it)."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited (code {code})"


class ExternalProxy:
    """A proxy run as an external command that speaks the harness's JSON-lines protocol."""

    name = "external"
    description = "an external command speaking JSON lines (--proxy-command 'CMD ARGS')"
    relays_connections = True
    """The protocol does not say how a candidate carries connections (the example relays them
    in its own process), so connections it drops when restarted are excused, never moves."""

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
        try:
            os.fsencode(command)
        except UnicodeEncodeError as error:
            raise UsageError(
                f"--proxy-command holds {shorten(error.object[error.start : error.end])},"
                " which no command line can carry; give the command as the shell would"
            ) from None
        if "\x00" in command:
            raise UsageError("--proxy-command holds a NUL byte, which no command line can carry")
        self.command = command
        self.timeouts = timeouts or Timeouts()
        self.enter_netns = enter_netns
        self.node: NodeContext | None = None
        self.shutdown_failure: ProxyFailure | None = None
        self._process: NetnsProcess | None = None
        self._lines: _Lines | None = None
        self._pending: list[Message] = []
        self._seq = 0
        self._answered = ""  # the last request answered, "kind #seq"
        self._failure: ProxyFailure | None = None
        self._services: dict[str, Service] = {}
        self._slices: dict[tuple[str, str], EndpointSlice] = {}
        self.declared_version: str | None = None  # from the hello reply's optional `version`
        self.declared_features: tuple[str, ...] | None = None  # the hello reply's `features`

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
        self._answered = ""
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
        reply = self._request(hello(node))
        declared = reply.get("version")
        self.declared_version = declared if isinstance(declared, str) else None
        self.declared_features = self._features(reply.get("features"))

    def _features(self, names: list[str] | None) -> tuple[str, ...] | None:
        """The hello reply's optional `features` (None when absent: core only); a declaration
        naming an unknown feature or omitting a core one stops the proxy and is a UsageError."""
        if names is None:
            return None
        try:
            declared_features(names, f"proxy {self.name!r}: the hello reply's features")
        except UsageError:
            self.stop()
            raise
        return tuple(names)

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
                if process.wait(self.timeouts.shutdown_s):
                    self._check_nothing_more(process)
            except ProxyFailure as failure:
                self.shutdown_failure = failure
        process.stop(grace_s=1.5)
        process.log.unlink(missing_ok=True)

    # -- one request, one reply ---------------------------------------------------------------
    def _unsolicited(self, process: NetnsProcess, upcoming: str) -> None:
        """ProxyFailure if the proxy wrote anything nobody asked for: more after its answer to
        the last request, or anything before the first (`upcoming`)."""
        assert self._lines is not None
        if extra := self._lines.unsolicited():
            where = (
                f"after its answer to {self._answered}" if self._answered else f"before {upcoming}"
            )
            self._fail(
                process,
                f"wrote output nobody asked for {where}: {shown(extra)};"
                " only replies go to stdout, exactly one line per request (logs go to stderr)",
            )

    def _check_nothing_more(self, process: NetnsProcess) -> None:
        """After the proxy exited: nothing may follow its answer to shutdown."""
        with contextlib.suppress(_Closed):
            self._unsolicited(process, "exiting")

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
        asked, fix = f"{kind} #{seq}", reply_fix(seq)
        limit_s = self.timeouts.for_request(kind)
        deadline_s = time.monotonic() + limit_s
        line = b""
        try:
            self._unsolicited(process, asked)
            _write(process.stdin, encode(message), deadline_s)
            line = self._lines.read(deadline_s)
            reply = parse_reply(line)
        except _Silent:
            partial = self._lines.partial
            sent = f", having sent {shown(partial)} without a newline" if partial else ""
            self._fail(process, f"did not answer {asked} within {limit_s:g} s{sent}; {fix}")
        except _Closed:
            ended = _ending(process.returncode()) if process.wait(0.5) else None
            partial = self._lines.partial
            sent = f", having sent {shown(partial)} without a newline" if partial else ""
            self._fail(process, f"{ended or 'closed its stdout'} before answering {asked}{sent}")
        except _TooLong as error:
            self._fail(
                process,
                f"answered {asked} with a line longer than {MAX_LINE_BYTES:,} bytes, starting"
                f" {shown(error.start)}; {fix}",
            )
        except ProtocolError as error:
            self._fail(process, f"answered {asked} with garbage, {shown(line)}: {error}; {fix}")
        if reply.get("seq", seq) < seq:
            self._fail(
                process,
                f"answered {asked} with output nobody asked for: a second reply to"
                f" #{reply['seq']}, {shown(line)}; only replies go to stdout, exactly one line per"
                f" request, and {fix[3:]}",
            )
        if reply.get("seq", seq) != seq:
            self._fail(
                process,
                f"answered {asked} with the reply to #{reply['seq']}, {shown(line)}; {fix}",
            )
        if not reply["ok"]:
            self._fail(process, f"refused {asked}: {reply['error']}")
        self._answered = asked
        return reply

    def _fail(self, process: NetnsProcess, problem: str) -> NoReturn:
        """Record the failure, stop the proxy, and raise."""
        process.stop(grace_s=0.5)
        self._failure = ProxyFailure(self.name, problem, process.tail())
        raise self._failure from None
