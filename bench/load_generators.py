"""Bounded load-generator runs inside a client namespace of the local cluster.

Contract: every run happens under `ip netns exec CLIENT_NETNS`, where CLIENT_NETNS must be a
namespace a harness run made (`hk` + five hex digits, present under /run/netns); anything else is
refused, so no load is ever generated from the root namespace. A run stops by itself (wrk `-d`,
locust `-t`) and is also bounded from outside: past its deadline its process group (the one this
module started, and nothing else) gets SIGTERM, then SIGKILL. Client source ports are left to the
kernel (nothing binds), so back-to-back runs never pin ports into each other's TIME_WAIT.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from load_results import LoadResult, parse_locust, parse_wrk

from harness.local.names import netns_path, run_of
from harness.proxies.process import netns_argv

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
WRK_MARGIN_S = 10.0
LOCUST_MARGIN_S = 30.0  # start-up, and with --processes the fork and the workers' handshake
KILL_WAIT_S = 3.0


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


def run_bounded(
    netns: str,
    argv: Sequence[str],
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Finished:
    """Run `argv` inside the client namespace `netns`; LoadRunFailed past `timeout_s`."""
    command = netns_argv(check_client_netns(netns), argv)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,  # its own process group: the one we may end, and only it
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _end_group(process)
        raise LoadRunFailed(f"{argv[0]} did not stop within {timeout_s:.0f} s") from None
    except BaseException:
        _end_group(process)
        raise
    return Finished(process.returncode, stdout, stderr)


def _end_group(process: subprocess.Popen[str]) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            break
        try:
            process.communicate(timeout=KILL_WAIT_S)
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
    processes: int = 1,
    user_kind: str = "fast",
) -> LoadResult:
    """One headless locust run of bench/locustfile.py against the base URL `url` (no path);
    its JSON stats are read back.

    Locust runs in `workdir` (so no locust.conf or pyproject.toml of ours configures it) and
    exits 1 when a request failed; the failures are counted in the result, not raised.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    report = workdir / "stats"
    report.with_suffix(".json").unlink(missing_ok=True)
    argv = ["locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users * 10)]
    argv += ["-t", f"{seconds}s", "-H", url, "--json-file", str(report), "--only-summary"]
    argv += ["--loglevel", "WARNING", "--stop-timeout", "2"]
    argv += ["--processes", str(processes)] if processes > 1 else []
    env = {
        "HARNESS_LOCUST_CONNECTION": "close" if fresh else "keep-alive",
        "HARNESS_LOCUST_USER": user_kind,
    }
    finished = run_bounded(netns, argv, seconds + LOCUST_MARGIN_S, env, workdir)
    path = report.with_suffix(".json")
    if not path.exists():
        raise LoadRunFailed(f"locust wrote no {path.name} (exit {finished.returncode}): "
                            f"{_tail(finished)}")  # fmt: skip
    try:
        return parse_locust(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as error:
        raise LoadRunFailed(f"locust's {path} is unreadable: {error}") from None


def _tail(finished: Finished) -> str:
    text = (finished.stderr or finished.stdout).strip().splitlines()
    return " | ".join(text[-3:]) or f"exit {finished.returncode}, no output"
