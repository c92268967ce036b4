"""Processes a proxy starts inside the node's network namespace, and how they end.

`NetnsProcess` runs a command under `ip netns exec NETNS` (root only to enter the namespace),
optionally dropping to an unprivileged user that keeps just CAP_NET_BIND_SERVICE (so it may listen
on Service ports below 1024 without any sysctl change). The process leads its own process group,
so `stop()` ends it and everything it forked, and nothing else; and it gets SIGTERM when the
harness dies, even by SIGKILL (`supervised_argv`), so a killed run leaves no daemon behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.documents import shorten
from harness.errors import EnvironmentProblem
from harness.local.names import PREFIX_ENVIRONMENT
from harness.proxies.base import NodeContext

UNPRIVILEGED_UID = 65534  # nobody
UNPRIVILEGED_GID = 65534  # nogroup
TAIL_BYTES = 4096
PARENT_DEATH_SIGNAL = "TERM"
GROUP_POLL_S = 0.01


@dataclass(frozen=True)
class Unprivileged:
    """The user a daemon runs as; it keeps only the capability to bind low ports."""

    uid: int = UNPRIVILEGED_UID
    gid: int = UNPRIVILEGED_GID

    def options(self) -> list[str]:
        """`setpriv`'s options that switch to this user."""
        return [
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--inh-caps=+net_bind_service",
            "--ambient-caps=+net_bind_service",
        ]


def supervised_argv(argv: Sequence[str], user: Unprivileged | None = None) -> list[str]:
    """`argv` run as `user` (None: as this process's user), sent SIGTERM when its parent dies.

    `setpriv` sets the parent-death signal (PR_SET_PDEATHSIG) after the user switch, which would
    clear it. The kernel sends it when the thread that started the process ends, however it ends
    (SIGKILL included), so a daemon never outlives a killed harness; a daemon's master then stops
    its own workers. It does not reach processes the command forks (a shell's children): those
    are left to their stdin's end and to `harness clean`. Without `setpriv` (util-linux) a user
    switch is impossible (EnvironmentProblem) and a process as root runs unsupervised.
    """
    if shutil.which("setpriv") is None:
        if user is not None:
            raise EnvironmentProblem(
                "running a daemon as nobody needs `setpriv`: apt-get install util-linux"
            )
        return list(argv)
    return [
        "setpriv",
        *(user.options() if user else []),
        f"--pdeathsig={PARENT_DEATH_SIGNAL}",
        "--",
        *argv,
    ]


def run_environment(node: NodeContext) -> dict[str, str]:
    """The environment of a proxy's processes: the harness's, plus the run prefix that
    `harness clean` looks for to find the processes of a crashed run."""
    return {**os.environ, PREFIX_ENVIRONMENT: node.prefix}


def netns_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    """The command line that runs `argv` inside `netns` (or here, when None)."""
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


def run_in_netns(netns: str, argv: Sequence[str], timeout_s: float = 10.0) -> None:
    """Run a short command (an `ip` change) inside `netns`; EnvironmentProblem if it fails."""
    command = netns_argv(netns, argv)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise EnvironmentProblem(f"{' '.join(command)} failed: {error}") from None
    if result.returncode != 0:
        raise EnvironmentProblem(f"{' '.join(command)} failed: {result.stderr.strip()}")


class NetnsProcess:
    """One long-running command inside a network namespace, with its output in `log`.

    With `pipes`, `stdin` and `stdout` are pipes to the process (stderr still goes to `log`);
    without, both stdout and stderr go to `log`. `stop()` may be called at any time, any number of
    times, and returns within `grace_s` plus a second.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        netns: str | None,
        log: Path,
        user: Unprivileged | None = None,
        pipes: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.netns = netns
        self.log = log
        self.user = user
        self.pipes = pipes
        self.env = dict(env) if env is not None else None
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process; it gets SIGTERM if the thread calling this ends before `stop()`
        (`supervised_argv`), so call it from the thread that owns the process's lifetime."""
        command = netns_argv(self.netns, supervised_argv(self.argv, self.user))
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            try:
                self._popen = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE if self.pipes else subprocess.DEVNULL,
                    stdout=subprocess.PIPE if self.pipes else log,
                    stderr=log,
                    start_new_session=True,
                    env=self.env,
                )
            except OSError as error:
                raise EnvironmentProblem(
                    f"cannot start {shorten(' '.join(self.argv))}:"
                    f" {error.strerror or error} (running {command[0]})"
                ) from None

    @property
    def pid(self) -> int:
        assert self._popen is not None, "not started"
        return self._popen.pid

    @property
    def stdin(self) -> IO[bytes]:
        assert self._popen is not None and self._popen.stdin is not None
        return self._popen.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self._popen is not None and self._popen.stdout is not None
        return self._popen.stdout

    def returncode(self) -> int | None:
        """The exit code once the process ended, None while it runs (or before start)."""
        return self._popen.poll() if self._popen is not None else None

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def tail(self) -> str:
        """The last few kilobytes of the process's log."""
        try:
            with open(self.log, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - TAIL_BYTES))
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the process to end; whether it did."""
        if self._popen is None:
            return True
        try:
            self._popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, grace_s: float = 2.0) -> None:
        """TERM the process group, KILL it after `grace_s`, reap the process, and return once
        no process of the group runs any more (or a second after the KILL)."""
        if self._popen is None:
            return
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 1.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, sig)
            if self._wait_group(wait_s):
                break
        for stream in (self._popen.stdin, self._popen.stdout):
            if stream is not None:
                stream.close()

    def _wait_group(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the process and every process of its group to end."""
        assert self._popen is not None
        deadline_s = time.monotonic() + timeout_s
        if not self.wait(timeout_s):
            return False
        while group_alive(self._popen.pid):
            if time.monotonic() >= deadline_s:
                return False
            time.sleep(GROUP_POLL_S)
        return True


def group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs. Zombies do not count: they hold nothing,
    and in a container whose first process does not reap, orphans stay zombies for good."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid).encode() and fields[0] not in (b"Z", b"X"):
            return True
    return False
