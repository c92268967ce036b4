"""Bounded load-generator runs inside a client namespace of the local cluster.

Contract: every run happens under `ip netns exec CLIENT_NETNS`, where CLIENT_NETNS must be a
namespace a harness run made (`hk` + five hex digits, present under /run/netns); anything else is
refused, so no load is ever generated from the root namespace. A run stops by itself (wrk `-d`,
locust `-t`) and is also bounded from outside: past its deadline every process group this module
started for it (and nothing else) gets SIGTERM, then SIGKILL. Client source ports are left to the
kernel (nothing binds), so back-to-back runs never pin ports into each other's TIME_WAIT.

Locust runs distributed, always (so that runs with 1, 2 or 3 workers are alike but for the
count): one headless `--master` (it runs no users) and `workers` `--worker` processes, all in
the client namespace, talking over that namespace's own loopback (127.0.0.1:MASTER_PORT: the
root namespace's loopback is never used). The master's `--json-file` holds the statistics merged
over its workers; each worker of bench/locustfile.py also writes its tally (a microsecond
latency histogram and the answers per pod, bench/worker_tally.py), merged here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from load_results import LoadResult, parse_locust, parse_wrk
from worker_tally import FILE_PATTERN

from harness.local.names import netns_path, run_of
from harness.proxies.process import netns_argv

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
BARE_LOCUSTFILE = Path(__file__).resolve().with_name("locustfile_bare.py")
WRK_MARGIN_S = 10.0
LOCUST_MARGIN_S = 40.0  # start-up of master and workers (imports: ~2 s CPU each) and handshake
WORKERS_WAIT_S = 20  # the master starts without the workers that did not connect by then
MASTER_PORT = 5557
KILL_WAIT_S = 3.0
FOLLOWERS_S = 15.0  # a worker quits within a second of its master's quit message here


class LoadRunFailed(RuntimeError):
    """A run that gave no figures: it failed to start, exited without a report, or timed out."""


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


def check_client_netns(netns: str) -> str:
    """`netns` if it is a live harness-made namespace; ValueError otherwise."""
    if not netns or run_of(netns) is None or not os.path.exists(netns_path(netns)):
        raise ValueError(f"refusing to generate load outside a harness namespace: {netns!r}")
    return netns


@dataclass
class _Running:
    """A started command, its output going to unnamed temporary files (not pipes: a process
    nobody is reading yet, such as a worker while the master is awaited, never blocks)."""

    argv: Sequence[str]
    process: subprocess.Popen[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]

    def finished(self) -> Finished:
        self.stdout.seek(0)
        self.stderr.seek(0)
        text = [f.read().decode(errors="replace") for f in (self.stdout, self.stderr)]
        return Finished(self.process.returncode, text[0], text[1])


def _start(
    netns: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    cwd: Path | None,
    files: ExitStack,
) -> _Running:
    # closed by the caller's ExitStack
    stdout = files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
    stderr = files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
    process = subprocess.Popen(
        netns_argv(check_client_netns(netns), argv),
        stdout=stdout,
        stderr=stderr,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,  # its own process group: the one we may end, and only it
    )
    return _Running(argv, process, stdout, stderr)


def run_bounded_together(
    netns: str,
    commands: Sequence[Sequence[str]],
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> list[Finished]:
    """Run every one of `commands` at once inside the client namespace `netns` and wait for all
    of them. The first leads (a locust master): past `timeout_s` from the start, or on any
    error (interrupt included), every group still running is ended and LoadRunFailed names the
    first command that had not stopped; once the first has exited, the others get FOLLOWERS_S
    more to exit (locust workers told to quit by their master) and are then ended, their exit
    status (negative: the signal) returned, not raised, so the leader's own report is read."""
    running: list[_Running] = []
    deadline = time.monotonic() + timeout_s
    with ExitStack() as files:
        try:
            for argv in commands:
                running.append(_start(netns, argv, env, cwd, files))
            for index, one in enumerate(running):
                try:
                    one.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    if index == 0:
                        raise LoadRunFailed(
                            f"{' '.join(one.argv[:3])} did not stop within {timeout_s:.0f} s"
                        ) from None
                    _end_group(one.process)
                if index == 0:
                    deadline = min(deadline, time.monotonic() + FOLLOWERS_S)
            return [one.finished() for one in running]
        finally:
            for one in running:
                if one.process.poll() is None:
                    _end_group(one.process)


def run_bounded(
    netns: str,
    argv: Sequence[str],
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Finished:
    """Run `argv` inside the client namespace `netns`; LoadRunFailed past `timeout_s`."""
    return run_bounded_together(netns, [argv], timeout_s, env, cwd)[0]


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, to the process group of `process` (one this module started)."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=KILL_WAIT_S)
            break
        except subprocess.TimeoutExpired:
            continue


def wrk(
    netns: str, url: str, seconds: int, threads: int, connections: int, fresh: bool
) -> LoadResult:
    """One wrk run asking `url`/ (a base URL); `fresh` sends `Connection: close`, so every request
    opens a connection."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    argv += ["-H", "Connection: close"] if fresh else []
    finished = run_bounded(netns, [*argv, f"{url}/"], seconds + WRK_MARGIN_S)
    try:
        return parse_wrk(finished.stdout)
    except ValueError:
        raise LoadRunFailed(f"wrk gave no report: {_tail(finished)}") from None


def locust(
    netns: str,
    url: str,
    seconds: int,
    users: int,
    fresh: bool,
    workdir: Path,
    workers: int = 1,
    user_kind: str = "fast",
    locustfile: Path = LOCUSTFILE,
) -> LoadResult:
    """One headless distributed locust run of `locustfile` (a master and `workers` workers, see
    the module docstring) against the base URL `url` (no path); the master's JSON stats and the
    workers' tallies are read back (the bare locustfile writes none: no latency, no pods).

    Every process runs in `workdir` (so no locust.conf or pyproject.toml of ours configures
    it); the master exits 1 when a request failed: the failures are counted, not raised.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    report = workdir / "stats"
    report.with_suffix(".json").unlink(missing_ok=True)
    tally_dir = workdir / "tallies"
    for old in tally_dir.glob(FILE_PATTERN):
        old.unlink()
    common = ["locust", "-f", str(locustfile), "--loglevel", "WARNING"]
    master = [*common, "--master", "--master-bind-host", "127.0.0.1"]
    master += ["--master-bind-port", str(MASTER_PORT), "--expect-workers", str(workers)]
    master += ["--expect-workers-max-wait", str(WORKERS_WAIT_S), "--headless"]
    master += ["-u", str(users), "-r", str(users * 10), "-t", f"{seconds}s", "-H", url]
    master += ["--json-file", str(report), "--only-summary", "--stop-timeout", "2"]
    worker = [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(MASTER_PORT)]
    env = {
        "HARNESS_LOCUST_CONNECTION": "close" if fresh else "keep-alive",
        "HARNESS_LOCUST_USER": user_kind,
        "HARNESS_LOCUST_TALLY_DIR": str(tally_dir),
    }
    timeout_s = seconds + WORKERS_WAIT_S + LOCUST_MARGIN_S
    finished = run_bounded_together(netns, [master] + [worker] * workers, timeout_s, env, workdir)
    path = report.with_suffix(".json")
    if not path.exists():
        raise LoadRunFailed(f"locust wrote no {path.name} (exit {finished[0].returncode}): "
                            f"{_tail(finished[0])}")  # fmt: skip
    try:
        tallies = [json.loads(f.read_text()) for f in sorted(tally_dir.glob(FILE_PATTERN))]
        return parse_locust(json.loads(path.read_text()), tallies)
    except (ValueError, KeyError, TypeError) as error:
        raise LoadRunFailed(f"locust's figures in {workdir} are unreadable: {error}") from None


def _tail(finished: Finished) -> str:
    text = (finished.stderr or finished.stdout).strip().splitlines()
    return " | ".join(text[-3:]) or f"exit {finished.returncode}, no output"
