"""Cleanup: on exit and signals for a live run, and `clean(prefix)` for what a crashed run left.

A live run holds an exclusive `flock` on `lock` in its work directory (`hold_run_lock`); the kernel
drops it when the process dies, however it dies. `clean` only touches runs whose lock is free, so
it can never pull namespaces from under a run still going on this machine (other people's test
runs included) unless asked to with `force`.

What a run leaves, found by its prefix (`harness.local.names`): namespaces under /run/netns,
processes (with the prefix in their environment, or living in one of the run's namespaces), and
its temporary work directory. Links, addresses, routes and rules all live inside the namespaces
and go with them.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError
from harness.interrupts import on_signal
from harness.local.names import BASE_PREFIX, NETNS_DIR, PREFIX_ENVIRONMENT, run_of
from harness.local.netns import delete_namespaces

LOCK_NAME = "lock"
KILL_WAIT_S = 5.0


# -- a live run -----------------------------------------------------------------------------------
@contextlib.contextmanager
def hold_run_lock(workdir: Path) -> Iterator[None]:
    """Mark the run owning `workdir` as live until the block ends (or the process dies)."""
    fd = os.open(workdir / LOCK_NAME, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _is_locked(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


_closers: dict[int, Callable[[], None]] = {}
_previous_handlers: dict[int, object] = {}
_guard_lock = threading.Lock()


def _close_all() -> None:
    for close in list(_closers.values()):
        with contextlib.suppress(Exception):
            close()


def guard(close: Callable[[], None]) -> Callable[[], None]:
    """Call `close` at interpreter exit and make SIGTERM raise KeyboardInterrupt, as SIGINT does
    (`harness.interrupts.on_signal`); an existing SIGTERM handler (the CLI's) is left in place.
    Returns the function that removes the guard again; closing twice must be harmless for
    `close`."""
    with _guard_lock:
        if not _closers:
            atexit.register(_close_all)
            in_main = threading.current_thread() is threading.main_thread()
            if in_main and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                _previous_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_signal)
        key = id(close)
        _closers[key] = close

    def unguard() -> None:
        with _guard_lock:
            _closers.pop(key, None)
            if _closers:
                return
            atexit.unregister(_close_all)
            for signum, handler in _previous_handlers.items():
                if threading.current_thread() is threading.main_thread():
                    signal.signal(signum, handler)  # type: ignore[arg-type]
            _previous_handlers.clear()

    return unguard


# -- a crashed run --------------------------------------------------------------------------------
def _matches(name: str, prefix: str) -> str | None:
    run = run_of(name)
    return run if run is not None and run.startswith(prefix) else None


def _live_runs(runs: set[str], workdirs: list[Path]) -> set[str]:
    return {
        run
        for run in runs
        for workdir in workdirs
        if run_of(workdir.name) == run and _is_locked(workdir / LOCK_NAME)
    }


def _namespace_inodes(names: list[str]) -> dict[int, str]:
    inodes = {}
    for name in names:
        with contextlib.suppress(OSError):
            inodes[os.stat(f"{NETNS_DIR}/{name}").st_ino] = name
    return inodes


@dataclass(frozen=True)
class _Process:
    """What /proc says about one process, as far as finding a run's processes needs."""

    pid: int
    parent: int
    netns: int
    command: str
    marker: str | None  # the run prefix in its environment


def _processes() -> list[_Process]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int(Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
            environment = Path(entry.path, "environ").read_bytes().split(b"\0")
            marker = next(
                (
                    value.decode(errors="replace")
                    for key, _, value in (v.partition(b"=") for v in environment)
                    if key == PREFIX_ENVIRONMENT.encode()
                ),
                None,
            )
            command = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
            netns = os.stat(Path(entry.path, "ns", "net")).st_ino
            found.append(
                _Process(int(entry.name), parent, netns, command.decode(errors="replace"), marker)
            )
    return found


def _run_processes(runs: set[str], inodes: dict[int, str]) -> dict[int, str]:
    """Processes that belong to `runs`, by pid, with the run (or namespace) they belong to.

    A process belongs to a run when its environment names the run, or it lives in one of the
    run's namespaces, or (outside this process's namespace, in one whose name is already gone)
    its command line names the run's work directory or its parent belongs to the run in the same
    namespace: daemons such as nginx overwrite their environment. Never this process, and never
    a process of this process's (the root) namespace for its command line or parent alone.
    """
    table = _processes()
    root_netns = os.stat("/proc/self/ns/net").st_ino  # where the harness runs: the root one
    workdirs = {run: f"{tempfile.gettempdir()}/{run}-" for run in runs}
    found: dict[int, str] = {}
    for process in table:
        if process.netns in inodes:
            found[process.pid] = inodes[process.netns]
        elif process.marker in runs:
            found[process.pid] = process.marker
        elif process.netns != root_netns:
            named = [run for run, workdir in workdirs.items() if workdir in process.command]
            if named:
                found[process.pid] = named[0]
    netns_of = {process.pid: process.netns for process in table}
    children: dict[int, list[int]] = {}
    for process in table:
        children.setdefault(process.parent, []).append(process.pid)
    queue = list(found)
    while queue:
        parent = queue.pop()
        for child in children.get(parent, []):
            if child not in found and netns_of[child] == netns_of[parent] != root_netns:
                found[child] = found[parent]
                queue.append(child)
    found.pop(os.getpid(), None)
    return found


def _kill(pids: dict[int, str]) -> list[str]:
    removed = []
    for pid, run in pids.items():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            removed.append(f"process {pid} ({run})")
    deadline = time.monotonic() + KILL_WAIT_S
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.02)  # a killed process stays until its parent reaps it; zombies hold nothing
        if all(_is_zombie(pid) for pid in pids if Path(f"/proc/{pid}").exists()):
            break
    return removed


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def clean(prefix: str | None = None, force: bool = False) -> list[str]:
    """Remove what runs whose prefix starts with `prefix` (default: every run, `hk`) left behind:
    their processes, namespaces and work directories. Returns one line per thing removed.

    Runs still alive on this machine (their lock is held) are left alone unless `force`.
    Nothing outside those runs is touched: names must match `hk` + five hex digits.
    """
    prefix = prefix or BASE_PREFIX
    if not prefix.startswith(BASE_PREFIX) or run_of(prefix.ljust(7, "0")) is None:
        raise UsageError(f"prefix {prefix!r} is not a run prefix (hk and up to five hex digits)")
    namespaces = sorted(
        entry.name for entry in _scan(Path(NETNS_DIR)) if _matches(entry.name, prefix)
    )
    workdirs = [
        Path(entry.path)
        for entry in _scan(Path(tempfile.gettempdir()))
        if entry.is_dir(follow_symlinks=False) and _matches(entry.name, prefix)
    ]
    runs = {run for name in namespaces if (run := run_of(name))}
    runs |= {run for workdir in workdirs if (run := run_of(workdir.name))}
    live = set() if force else _live_runs(runs, workdirs)
    runs -= live
    namespaces = [name for name in namespaces if run_of(name) in runs]
    workdirs = [workdir for workdir in workdirs if run_of(workdir.name) in runs]
    removed = _kill(_run_processes(runs, _namespace_inodes(namespaces))) if runs else []
    delete_namespaces(namespaces)
    removed += [f"netns {name}" for name in namespaces if not os.path.exists(f"{NETNS_DIR}/{name}")]
    for workdir in workdirs:
        shutil.rmtree(workdir, ignore_errors=True)
        removed.append(f"directory {workdir}")
    return removed


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(directory))
    except FileNotFoundError:
        return []
