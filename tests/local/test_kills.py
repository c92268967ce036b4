"""Killed at any point, nothing left (issue #14).

`harness run` on every local proxy is stopped at random moments with SIGINT, SIGTERM or SIGKILL
(then `harness clean --prefix P`). Afterwards nothing of the run may remain: no namespace (and so
none of the run's links, addresses, routes or rules), no process, no temporary file or directory;
the root namespace is compared around every test here by tests/conftest.py. SIGINT and SIGTERM
must be acknowledged within a second and end the run with exit 130, printing nothing but the
harness's own one-line messages. Half the runs start with SIGINT ignored, as CI runners and
background jobs start them; half get the signal as a whole process group, as a terminal's Ctrl-C
sends it.

The random moments are drawn after the CLI installed its handlers (a signal during the
interpreter's own start-up, before `main()` runs, finds nothing made yet).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.local.cleanup import clean
from harness.local.names import NETNS_DIR, new_prefix
from tests.local.conftest import needs_root
from tests.local.runs import HARNESS, NOISE, Run, leftovers, pinned_namespaces, run_argv

pytestmark = [pytest.mark.netns, needs_root]

PROXIES = ("iptables", "nftables", "userspace", "nginx", "haproxy", "external")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
ROUNDS = 3  # 6 proxies x 3 signals x 3 rounds = 54 kills
MAX_DELAY_S = 2.0  # after main() starts: proxy start, pod creation, the first examples' steps
EXAMPLES = 100  # far more than fit before the kill
ACK_BOUND_S = 1.0
EXIT_BOUND_S = 30.0
PARALLEL = 2
SWEEP_ENVIRONMENT = "HARNESS_KILL_SWEEP"
RUN_PROCESSES = {"iptables": 1, "nftables": 1, "userspace": 2, "nginx": 3, "haproxy": 3}
"""The fewest processes a run has once started: the pod server, and the proxy's."""


@dataclass(frozen=True)
class Kill:
    """One run and how it ends."""

    proxy: str
    signum: int
    delay_s: float
    sigint_ignored: bool
    group: bool
    seed: int

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        start = "SIGINT ignored" if self.sigint_ignored else "SIGINT default"
        to = "group" if self.group else "process"
        return f"local:{self.proxy} {name} to {to} after {self.delay_s:.2f}s ({start})"


@dataclass
class Outcome:
    kill: Kill
    problems: list[str] = field(default_factory=list)
    acknowledged_s: float | None = None
    exited_s: float | None = None


def plan(rounds: int, rng: random.Random, max_delay_s: float) -> list[Kill]:
    """Every proxy with every signal, `rounds` times, at random moments; the inherited SIGINT
    disposition and the signal's reach (process or group) alternate."""
    kills = []
    for number, (proxy, signum) in enumerate(list(itertools.product(PROXIES, SIGNALS)) * rounds):
        kills.append(
            Kill(
                proxy,
                signum,
                rng.uniform(0.0, max_delay_s),
                sigint_ignored=number % 2 == 0,
                group=number % 4 < 2,
                seed=rng.randrange(2**31),
            )
        )
    rng.shuffle(kills)
    return kills


def kill_once(kill: Kill, failures_dir: Path) -> Outcome:
    """Start the run, signal it at its moment, clean after SIGKILL, and list what went wrong."""
    outcome = Outcome(kill)
    prefix = new_prefix()
    argv = run_argv(kill.proxy, EXAMPLES, kill.seed, failures_dir / prefix)
    run = Run(argv, prefix, kill.sigint_ignored).start()
    try:
        if not run.wait_for_handlers():
            run.wait(1)
            outcome.problems.append(f"never installed its handlers: {run.stderr[-500:]}")
            return outcome
        time.sleep(kill.delay_s)
        with pinned_namespaces(prefix) as inodes:
            sent_s = run.signal(kill.signum, kill.group)
            code = run.wait(EXIT_BOUND_S)
            outcome.exited_s = time.monotonic() - sent_s
            if code is None:
                outcome.problems.append(f"still running {EXIT_BOUND_S:g}s after the signal")
            if kill.signum == signal.SIGKILL:
                cleaned = subprocess.run(
                    [HARNESS, "clean", "--prefix", prefix],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                if cleaned.returncode != 0:
                    outcome.problems.append(f"harness clean exited {cleaned.returncode}")
            else:
                _check_quiet_stop(run, code, sent_s, outcome)
            left = leftovers(prefix, inodes)
        if left:
            outcome.problems.append(f"left {left}")
        return outcome
    finally:
        clean(prefix, force=True)


def _check_quiet_stop(run: Run, code: int | None, sent_s: float, outcome: Outcome) -> None:
    name = signal.Signals(outcome.kill.signum).name
    acknowledged = run.first_line_after(sent_s, f"{name}: stopping")
    if acknowledged is None:
        outcome.problems.append("never acknowledged the signal")
    else:
        outcome.acknowledged_s = acknowledged - sent_s
        if outcome.acknowledged_s > ACK_BOUND_S:
            outcome.problems.append(f"acknowledged after {outcome.acknowledged_s:.2f}s")
    if code != 130:
        outcome.problems.append(f"exit {code}, not 130")
    noise = [line for line in run.stderr.splitlines() if any(word in line for word in NOISE)]
    if noise or code != 130:
        outcome.problems.append(f"stderr: {run.stderr[-1500:]}")


def sweep(kills: list[Kill], failures_dir: Path) -> list[Outcome]:
    """Every kill, PARALLEL at a time (the root namespace is compared around the whole test by
    tests/conftest.py)."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(lambda kill: kill_once(kill, failures_dir), kills))
    acknowledged = [o.acknowledged_s for o in outcomes if o.acknowledged_s is not None]
    exited = [o.exited_s for o in outcomes if o.exited_s is not None]
    print(
        f"{len(outcomes)} kills; acknowledged within max {max(acknowledged, default=0):.3f}s;"
        f" exited within max {max(exited, default=0):.2f}s"
    )
    return outcomes


def test_runs_killed_at_random_moments_leave_nothing(tmp_path: Path) -> None:
    seed = random.randrange(2**31)
    kills = plan(ROUNDS, random.Random(seed), MAX_DELAY_S)
    assert len(kills) >= 50
    failed = [o for o in sweep(kills, tmp_path) if o.problems]
    assert not failed, f"seed {seed}:\n" + "\n".join(f"{o.kill}: {o.problems}" for o in failed)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get(SWEEP_ENVIRONMENT),
    reason=f"a long sweep: set {SWEEP_ENVIRONMENT}=ROUNDS (each round kills 18 runs)",
)
def test_a_long_sweep_of_kills_leaves_nothing(tmp_path: Path) -> None:
    seed = random.randrange(2**31)
    rounds = int(os.environ.get(SWEEP_ENVIRONMENT, "10"))
    kills = plan(rounds, random.Random(seed), 8.0)
    failed = [o for o in sweep(kills, tmp_path) if o.problems]
    assert not failed, f"seed {seed}:\n" + "\n".join(f"{o.kill}: {o.problems}" for o in failed)


@pytest.mark.parametrize("proxy", PROXIES)
def test_a_killed_runs_processes_end_by_themselves(proxy: str, tmp_path: Path) -> None:
    """After SIGKILL of the harness alone, the proxy's daemons (parent-death signal) and the
    helpers (the end of their stdin) end without `harness clean`, which then only removes
    namespaces and the work directory."""
    prefix = new_prefix()
    run = Run(run_argv(proxy, EXAMPLES, 1, tmp_path), prefix).start()
    try:
        assert run.wait_for_handlers(), run.stderr
        deadline_s = time.monotonic() + 20
        while not Path(NETNS_DIR, f"{prefix}-p0").exists() and time.monotonic() < deadline_s:
            time.sleep(0.05)  # the first pod exists: the proxy has started
        with pinned_namespaces(prefix) as inodes:
            wanted, deadline_s = RUN_PROCESSES.get(proxy, 2), time.monotonic() + 5
            while len(processes(prefix, inodes)) < wanted and time.monotonic() < deadline_s:
                time.sleep(0.05)  # a master daemon (haproxy -W) forks its worker a moment later
            assert len(processes(prefix, inodes)) >= wanted, run.stderr
            run.signal(signal.SIGKILL, group=False)
            assert run.wait(10) == -signal.SIGKILL
            deadline_s = time.monotonic() + 5
            while processes(prefix, inodes) and time.monotonic() < deadline_s:
                time.sleep(0.05)
            assert processes(prefix, inodes) == []
            assert clean(prefix) != []  # namespaces and the work directory were left for it
            assert leftovers(prefix, inodes) == []
    finally:
        clean(prefix, force=True)


def processes(prefix: str, inodes: Iterable[int] = ()) -> list[str]:
    return [item for item in leftovers(prefix, inodes) if item.startswith("process")]
