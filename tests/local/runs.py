"""`harness run` as a subprocess with a known run prefix, signalled at a chosen moment, and an
inventory of what a run left on the machine.

The run's prefix is chosen by the test (`HARNESS_NEW_RUN_PREFIX`), so only that run's leftovers
are ever looked at or removed: other engineers' runs on the same machine are never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.local.names import NETNS_DIR, PREFIX_ENVIRONMENT, PREFIX_REQUEST_ENVIRONMENT

REPOSITORY = Path(__file__).resolve().parents[2]
HARNESS = str(Path(sys.executable).with_name("harness"))  # the console script of this venv
EXAMPLE_PROXY = f"{sys.executable} {REPOSITORY}/examples/candidate-proxy/proxy.py"
HANDLERS_TIMEOUT_S = 20.0
NOISE = ("Traceback", "Exception ignored", "Task was destroyed", "never retrieved", "Warning")
"""What must never appear on stderr when a run is stopped by a signal."""


def run_argv(proxy: str, examples: int, seed: int, failures_dir: Path) -> list[str]:
    """`harness run` on `local:PROXY` (the example candidate proxy for `external`)."""
    argv = [HARNESS, "run", "--target", f"local:{proxy}", "--examples", str(examples)]
    argv += ["--seed", str(seed), "--failures-dir", str(failures_dir)]
    if proxy == "external":
        argv += ["--proxy-command", EXAMPLE_PROXY]
    return argv


def sigint_disposition(ignored: bool) -> Callable[[], None]:
    """A `preexec_fn` that starts a child with SIGINT ignored (as CI runners and background jobs
    of non-interactive shells start programs) or default, whatever this process inherited;
    SIGTERM and SIGHUP always default (a test suite started under `nohup` inherits SIGHUP
    ignored, which the harness rightly keeps ignored)."""
    disposition = signal.SIG_IGN if ignored else signal.SIG_DFL

    def set_disposition() -> None:
        signal.signal(signal.SIGINT, disposition)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    return set_disposition


def start_program(
    program: str, args: Sequence[str], sigint_ignored: bool, first_line: str
) -> subprocess.Popen[str]:
    """`python -c PROGRAM ARGS` with SIGINT ignored or default, once it printed `first_line`
    (stdout and stderr are pipes)."""
    process = subprocess.Popen(
        [sys.executable, "-c", program, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_disposition(sigint_ignored),
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == first_line, process.communicate()[1]
    return process


@dataclass
class Run:
    """A `harness run` process in its own session, its stderr lines with their arrival times."""

    argv: Sequence[str]
    prefix: str
    sigint_ignored: bool = False
    process: subprocess.Popen[bytes] = field(init=False)
    lines: list[tuple[float, str]] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def start(self) -> Run:
        """Start the run with SIGINT inherited as ignored (as a background job of a
        non-interactive shell, or CI, starts it) or as default."""
        environment = {**os.environ, PREFIX_REQUEST_ENVIRONMENT: self.prefix}
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=environment,
            start_new_session=True,
            preexec_fn=sigint_disposition(self.sigint_ignored),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

    def wait_for_handlers(self) -> bool:
        """Wait until the process catches SIGTERM (the CLI installed its handlers: `main()`
        runs); False if it exited or did not within HANDLERS_TIMEOUT_S."""
        deadline_s = time.monotonic() + HANDLERS_TIMEOUT_S
        while time.monotonic() < deadline_s and self.process.poll() is None:
            if signal.SIGTERM in caught_signals(self.process.pid):
                return True
            time.sleep(0.01)
        return False

    def signal(self, signum: int, group: bool) -> float:
        """Send `signum` to the run (or its whole process group, as a terminal's Ctrl-C does);
        returns when it was sent."""
        sent_s = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)
        return sent_s

    def wait(self, timeout_s: float) -> int | None:
        """The exit status (negative: killed by that signal), or None if still running (then
        it is killed)."""
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
        if self._reader is not None:
            self._reader.join(5)
        return code

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def first_line_after(self, since_s: float, text: str) -> float | None:
        """When a stderr line containing `text` arrived after `since_s`, if one did."""
        return next((at for at, line in self.lines if at >= since_s and text in line), None)


def caught_signals(pid: int) -> set[int]:
    """The signals process `pid` has a handler for (SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return set()
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line[:7] == "SigCgt:")
    return {bit + 1 for bit in range(64) if mask >> bit & 1}


@contextlib.contextmanager
def pinned_namespaces(prefix: str) -> Iterator[set[int]]:
    """The inodes of the run's namespaces that exist now, each held open for the block: so the
    kernel cannot give a freed namespace's inode to another run's new one, and processes still
    in them are found after their names are gone."""
    descriptors = []
    for name in _names(NETNS_DIR, prefix):
        with contextlib.suppress(OSError):
            descriptors.append(os.open(f"{NETNS_DIR}/{name}", os.O_RDONLY | os.O_CLOEXEC))
    try:
        yield {os.fstat(descriptor).st_ino for descriptor in descriptors}
    finally:
        for descriptor in descriptors:
            os.close(descriptor)


def leftovers(prefix: str, inodes: Iterable[int] = ()) -> list[str]:
    """Everything on the machine that belongs to the run: namespaces, temporary files and
    directories, and live processes (with the prefix in their environment, or in one of the
    run's namespaces, including those in `inodes`, pinned by `pinned_namespaces`, whose names
    may be gone)."""
    found = [f"netns {name}" for name in _names(NETNS_DIR, prefix)]
    found += [f"tmp {name}" for name in _names(tempfile.gettempdir(), prefix)]
    every_inode = set(inodes)
    for name in _names(NETNS_DIR, prefix):
        with contextlib.suppress(OSError):
            every_inode.add(os.stat(f"{NETNS_DIR}/{name}").st_ino)
    marker = f"{PREFIX_ENVIRONMENT}={prefix}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            in_namespace = os.stat(f"/proc/{pid}/ns/net").st_ino in every_inode
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if state != "Z" and (in_namespace or marker in environment):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            found.append(f"process {pid} {command.decode(errors='replace')[:80]}")
    return found


def _names(directory: str, prefix: str) -> list[str]:
    try:
        return sorted(name for name in os.listdir(directory) if name.startswith(prefix))
    except FileNotFoundError:
        return []
