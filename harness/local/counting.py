"""Counting many fresh connections fast: wrk from a client namespace, answers counted at the pods.

The deep profile's balancing probe needs hundreds of thousands of fresh connections per sample
(a 2% deviation of one share at n = 10 takes about 800,000). The client agent sends about 3,000
a second; wrk with `Connection: close` sends about 14,000 (measured here through the iptables
proxy). wrk does not say which pod answered, so the pod server counts its answers per pod
(`PodServer.counts`), and wrk's own error counts are the failures.

Bounded: wrk runs in rounds of at most `ROUND_S` seconds until the pods have answered `count`
times, and stops after `limit_s` in any case. Each wrk carries the run prefix in its environment
(`harness clean` finds it) and runs in the client's namespace only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from harness.errors import EnvironmentProblem
from harness.local.names import PREFIX_ENVIRONMENT
from harness.traffic import ErrorKind

ROUND_S = 20.0
FIRST_RATE = 5000.0  # connections a second assumed before the first round measured it
CONNECTIONS = 32
THREADS = 2
_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True)
class Counted:
    """Answers per pod key and failures per kind."""

    answered: Counter[str]
    failed: Counter[ErrorKind]


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def count_fresh(
    netns: str | None,
    url: str,
    count: int,
    prefix: str,
    pod_counts: Callable[[], dict[str, int]],
    limit_s: float,
) -> Counted:
    """At least `count` fresh connections to `url` from `netns` (see the module docstring);
    `pod_counts` returns and resets each pod's answers since its last call."""
    if not wrk_available():
        raise EnvironmentProblem("counting needs wrk: apt-get install wrk")
    pod_counts()  # start from zero
    answered: Counter[str] = Counter()
    failed: Counter[ErrorKind] = Counter()
    rate = FIRST_RATE
    stop_at = time.monotonic() + limit_s
    while sum(answered.values()) < count and time.monotonic() < stop_at:
        left = count - sum(answered.values())
        seconds = max(1, min(round(left / rate + 0.5), ROUND_S, stop_at - time.monotonic()))
        started = time.monotonic()
        output = _wrk(netns, url, int(seconds), prefix)
        got = pod_counts()
        answered.update({key: n for key, n in got.items() if n})
        failed.update(_failures(output))
        rate = max(sum(got.values()) / max(time.monotonic() - started, 0.1), 100.0)
    return Counted(answered, failed)


def _wrk(netns: str | None, url: str, seconds: int, prefix: str) -> str:
    argv = [
        "wrk",
        "-c",
        str(CONNECTIONS),
        "-t",
        str(THREADS),
        "-d",
        f"{seconds}s",
        "--timeout",
        "2s",
        "-H",
        "Connection: close",
        url,
    ]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    environment = {**os.environ, PREFIX_ENVIRONMENT: prefix}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 15, env=environment
        )
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"wrk did not end within {seconds + 15} s") from None
    if done.returncode != 0:
        raise EnvironmentProblem(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _failures(output: str) -> Counter[ErrorKind]:
    failed: Counter[ErrorKind] = Counter()
    if match := _ERRORS.search(output):
        connect, read, write, timeout = (int(n) for n in match.groups())
        failed[ErrorKind.REFUSED] += connect
        failed[ErrorKind.RESET] += read + write
        failed[ErrorKind.TIMEOUT] += timeout
    if match := _NON_2XX.search(output):
        failed[ErrorKind.OTHER] += int(match.group(1))
    return Counter({kind: n for kind, n in failed.items() if n})
