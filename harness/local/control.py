"""Helper processes controlled over a pipe: one JSON request per line in, one reply line out.

Used by the pod server and the userspace proxy. The harness side (`ControlledProcess`) starts
`python -m MODULE ARGS...` with the run prefix in its environment (so cleanup can find it), waits
for its `ready` line and then asks one request at a time. The process side (`serve_lines`) answers
until its stdin closes, so a helper never outlives a harness that was killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import select
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, Any

from harness.errors import EnvironmentProblem
from harness.local.names import PREFIX_ENVIRONMENT

READY_LINE = "ready"
REPLY_TIMEOUT_S = 30.0
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
Shutdown = Callable[[], Awaitable[None]]


# -- the helper process ---------------------------------------------------------------------------
async def serve_lines(handle: Handler, control_in: IO[bytes], control_out: IO[bytes]) -> None:
    """Answer each request line with `{"ok": true, ...reply}` or `{"ok": false, "error": ...}`
    until `control_in` reaches its end or the process gets SIGTERM (a request being answered is
    finished first)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), control_in)
    terminated = asyncio.Event()

    def terminate() -> None:
        terminated.set()
        reader.feed_eof()

    loop.add_signal_handler(signal.SIGTERM, terminate)
    written = _write_line(control_out, READY_LINE)
    while written and (line := await reader.readline()) and not terminated.is_set():
        try:
            reply = {"ok": True, **(await handle(json.loads(line)))}
        except Exception as error:  # reported to the harness, which raises it
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        written = _write_line(control_out, json.dumps(reply))


def _write_line(control_out: IO[bytes], line: str) -> bool:
    """Send one line; False once the harness is gone (its end of the pipe closed)."""
    try:
        control_out.write(line.encode() + b"\n")
        control_out.flush()
    except OSError:
        return False
    return True


def run_helper(handle: Handler, shutdown: Shutdown | None = None) -> None:
    """The main of a helper process: serve stdin/stdout until stdin closes or SIGTERM, then
    await `shutdown()` (close listeners, end connections) and exit 0, quietly.

    Raises the open-file limit to its hard cap (20,000 here: many pods, many connections) and
    ignores SIGINT: the harness, which owns the helper, stops it by closing its stdin once it has
    cleaned up (it starts helpers in their own session, out of a terminal's Ctrl-C). A harness
    killed with SIGKILL closes the pipe too, so a helper never outlives its harness.
    """
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def serve() -> None:
        try:
            await serve_lines(handle, sys.stdin.buffer, sys.stdout.buffer)
        finally:
            if shutdown is not None:
                await shutdown()

    try:
        asyncio.run(serve())
    finally:
        _settle_stdout()


def _settle_stdout() -> None:
    """Flush what is left for the harness; if it is gone (the pipe closed under a signal), point
    stdout at /dev/null, so that the interpreter's own flush at exit cannot print "Exception
    ignored ... BrokenPipeError" onto the harness's stderr, which helpers share (Python's
    documented way out of a closed pipe, "Note on SIGPIPE" in the `signal` docs)."""
    try:
        sys.stdout.flush()
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


# -- the harness side -----------------------------------------------------------------------------
class ControlledProcess:
    """A helper process and its control pipe; a context manager that stops it.

    Every failure raises EnvironmentProblem with one line naming `role`: the helper refused a
    request (its error), did not answer within REPLY_TIMEOUT_S, or exited.
    """

    def __init__(self, role: str, module: str, args: Sequence[str], prefix: str) -> None:
        self.role = role
        self.command = [sys.executable, "-m", module, *args]
        self.prefix = prefix
        self.process: subprocess.Popen[bytes] | None = None
        self._interrupted = False

    def __enter__(self) -> ControlledProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self._interrupted = False
        environment = {**os.environ, PREFIX_ENVIRONMENT: self.prefix}
        try:
            # its own session: a terminal's Ctrl-C (to the whole foreground group) reaches only
            # the harness, which stops the helper itself once it no longer needs it
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=environment,
                start_new_session=True,
            )
            line = self._read_line()
            if line != READY_LINE:
                raise EnvironmentProblem(f"the {self.role} did not start (it said {line!r})")
        except BaseException:  # an interrupt too: a helper half started is still stopped
            self.stop()
            raise

    def _read_line(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], REPLY_TIMEOUT_S)
        if not ready:
            raise EnvironmentProblem(f"the {self.role} did not answer within {REPLY_TIMEOUT_S} s")
        line = self.process.stdout.readline().decode().strip()
        if not line:
            raise EnvironmentProblem(f"the {self.role} exited (status {self.process.wait(5)})")
        return line

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return the reply; EnvironmentProblem if it was refused."""
        if self.process is None or self.process.poll() is not None:
            raise EnvironmentProblem(f"the {self.role} is not running")
        if self._interrupted:
            raise EnvironmentProblem(f"the {self.role} is out of step: a request was interrupted")
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
            reply: dict[str, Any] = json.loads(self._read_line())
        except BrokenPipeError:
            raise EnvironmentProblem(f"the {self.role} exited") from None
        except BaseException:
            # an unread reply would answer the next request: refuse any further one
            self._interrupted = True
            raise
        if not reply.get("ok"):
            error = reply.get("error")
            raise EnvironmentProblem(f"the {self.role} refused {message.get('op')}: {error}")
        return reply

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the control pipe (the helper then exits); kill it if it lingers. Idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin:
                process.stdin.close()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)
        if process.stdout:
            process.stdout.close()
