"""Cleanup: a run ends clean on exit and SIGTERM, and `clean(prefix)` removes what a run killed
with SIGKILL left, while never touching a run that is still alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.events import CreateService, Scale
from harness.local.cleanup import clean
from harness.local.names import NETNS_DIR, PREFIX_ENVIRONMENT
from harness.model.objects import labels_of
from harness.targets.local import LocalTarget
from harness.traffic import TrafficRequest
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

RUN = """
import sys, time
from harness.events import CreateService, Scale
from harness.model.objects import labels_of
from harness.proxies.userspace import UserspaceProxy
from harness.targets.local import LocalTarget
target = LocalTarget(UserspaceProxy, prefix=sys.argv[1])
target.open()
target.apply(CreateService("web", labels_of({"app": "web"})))
target.apply(Scale("web", 5))
print("ready", flush=True)
if sys.argv[2] == "busy":  # pods come and go until the signal lands in the middle of a change
    for _ in range(300):
        target.apply(Scale("web", 8))
        target.apply(Scale("web", 0))
        target.reset()
        target.apply(CreateService("web", labels_of({"app": "web"})))
time.sleep(60)
"""


def leftovers(prefix: str) -> list[str]:
    """Everything on the machine that carries the prefix: namespaces, directories, processes."""
    found = [f"netns {n}" for n in os.listdir(NETNS_DIR) if n.startswith(prefix)]
    found += [f"dir {d}" for d in os.listdir(tempfile.gettempdir()) if d.startswith(prefix)]
    marker = f"{PREFIX_ENVIRONMENT}={prefix}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(f"process {pid}")
        except OSError:
            continue
    return found


def start_run(prefix: str, busy: bool = False) -> subprocess.Popen[str]:
    mode = "busy" if busy else "idle"
    run = subprocess.Popen(
        [sys.executable, "-c", RUN, prefix, mode], stdout=subprocess.PIPE, text=True
    )
    assert run.stdout is not None
    assert run.stdout.readline().strip() == "ready"
    return run


def test_clean_removes_everything_a_killed_run_left(prefix: str) -> None:
    run = start_run(prefix)
    run.send_signal(signal.SIGKILL)
    run.wait(10)
    left = leftovers(prefix)
    assert any(item.startswith("netns") for item in left)  # the kill really left things
    assert any(item.startswith("dir") for item in left)
    removed = clean(prefix)
    assert any(item.startswith("netns") for item in removed)
    assert leftovers(prefix) == []
    assert clean(prefix) == []  # the root namespace is compared by tests/conftest.py


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_unwinds_the_run_and_leaves_nothing(prefix: str, signum: int) -> None:
    run = start_run(prefix)
    run.send_signal(signum)
    assert run.wait(20) != 0  # both unwind as an interrupt
    deadline = time.monotonic() + 5
    while leftovers(prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(prefix) == []


@pytest.mark.parametrize("delay_s", [0.3, 0.7, 1.1])
def test_sigterm_in_the_middle_of_a_change_leaves_nothing(prefix: str, delay_s: float) -> None:
    run = start_run(prefix, busy=True)
    time.sleep(delay_s)
    run.send_signal(signal.SIGTERM)
    assert run.wait(30) != 0
    assert leftovers(prefix) == []


def test_clean_leaves_a_live_run_alone(userspace_target: LocalTarget) -> None:
    userspace_target.apply(CreateService("web", labels_of({"app": "web"})))
    userspace_target.apply(Scale("web", 2))
    assert clean(userspace_target.prefix) == []
    assert len(userspace_target.send(TrafficRequest("web", count=4)).hits()) == 2


def test_clean_refuses_prefixes_that_are_not_run_prefixes() -> None:
    for bad in ("h", "web", "hkxyz", "hk1234567"):
        with pytest.raises(UsageError, match="not a run prefix"):
            clean(bad)
