"""Cleanup: a run ends clean on exit and SIGTERM, and `clean(prefix)` removes what a run killed
with SIGKILL left, while never touching a run that is still alive."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.events import CreateService, Scale
from harness.local.cleanup import clean
from harness.local.podserver import PodSpec
from harness.model.objects import labels_of
from harness.targets.local import LocalTarget
from harness.traffic import TrafficRequest
from tests.local.conftest import needs_root
from tests.local.runs import leftovers, start_program

pytestmark = [pytest.mark.netns, needs_root]

RUN = """
import sys, time
from harness import interrupts
from harness.events import CreateService, Scale
from harness.model.objects import labels_of
from harness.proxies.userspace import UserspaceProxy
from harness.targets.local import LocalTarget
interrupts.install()  # what a program driving a target does first (the CLI does)
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


def start_run(
    prefix: str, busy: bool = False, sigint_ignored: bool = False
) -> subprocess.Popen[str]:
    return start_program(RUN, [prefix, "busy" if busy else "idle"], sigint_ignored, "ready")


def test_clean_removes_everything_a_killed_run_left(prefix: str) -> None:
    run = start_run(prefix)
    run.send_signal(signal.SIGKILL)
    run.wait(10)
    left = leftovers(prefix)
    assert any(item.startswith("netns") for item in left)  # the kill really left things
    assert any(item.startswith("tmp") for item in left)
    removed = clean(prefix)
    assert any(item.startswith("netns") for item in removed)
    assert leftovers(prefix) == []
    assert clean(prefix) == []  # the root namespace is compared by tests/conftest.py


SETTLE_S = 5.0
"""How long a stopped run's last processes may take to end: a proxy process whose start the
signal interrupted (the Popen made, not yet recorded, so never stopped) is ended by the kernel's
parent-death signal (`harness.proxies.process.supervised_argv`) a moment after the run exits."""


def settled_leftovers(prefix: str) -> list[str]:
    """What the run left, once it had SETTLE_S to end its last processes (seen under load: a
    userspace proxy process still exiting right after the run did)."""
    deadline = time.monotonic() + SETTLE_S
    while leftovers(prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    return leftovers(prefix)


@pytest.mark.parametrize("sigint_ignored", [True, False], ids=["ignored", "default"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_unwinds_the_run_and_leaves_nothing(
    prefix: str, signum: int, sigint_ignored: bool
) -> None:
    run = start_run(prefix, sigint_ignored=sigint_ignored)
    run.send_signal(signum)
    assert run.wait(20) != 0  # both unwind as an interrupt
    assert settled_leftovers(prefix) == []


@pytest.mark.parametrize("delay_s", [0.3, 0.7, 1.1])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_in_the_middle_of_a_change_leaves_nothing(
    prefix: str, delay_s: float, signum: int
) -> None:
    run = start_run(prefix, busy=True, sigint_ignored=signum == signal.SIGINT)
    time.sleep(delay_s)
    run.send_signal(signum)
    assert run.wait(30) != 0
    assert settled_leftovers(prefix) == []


def test_clean_leaves_a_live_run_alone(userspace_target: LocalTarget) -> None:
    userspace_target.apply(CreateService("web", labels_of({"app": "web"})))
    userspace_target.apply(Scale("web", 2))
    assert clean(userspace_target.prefix) == []
    assert len(userspace_target.send(TrafficRequest("web", count=4)).hits()) == 2


def test_clean_refuses_prefixes_that_are_not_run_prefixes() -> None:
    for bad in ("h", "web", "hkxyz", "hk1234567"):
        with pytest.raises(UsageError, match="not a run prefix"):
            clean(bad)


def test_clean_finds_a_daemon_hiding_in_a_namespace_whose_name_is_gone(prefix: str) -> None:
    """A daemon that overwrote its environment (nginx does), in a namespace already unmounted:
    found by its command line naming the run's work directory, its children by descent. The same
    command line in the root namespace is never taken for the run's."""
    workdir = tempfile.mkdtemp(prefix=f"{prefix}-")
    netns = f"{prefix}-node"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    script = f"sleep 60 & wait # {workdir}/daemon.conf"
    hidden = subprocess.Popen(
        ["ip", "netns", "exec", netns, "env", "-i", "sh", "-c", script], start_new_session=True
    )
    bystander = subprocess.Popen(["env", "-i", "sh", "-c", script], start_new_session=True)
    try:
        time.sleep(0.3)
        subprocess.run(["ip", "netns", "del", netns], check=True)
        children = [
            int(pid)
            for pid in Path(f"/proc/{hidden.pid}/task/{hidden.pid}/children").read_text().split()
        ]
        assert children and leftovers(prefix) == [f"tmp {Path(workdir).name}"]
        removed = clean(prefix)
        assert f"process {hidden.pid} ({prefix})" in removed
        assert all(f"process {child} ({prefix})" in removed for child in children)
        assert hidden.wait(5) == -signal.SIGKILL
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_helpers_end_quietly_on_sigterm() -> None:
    """The pod server and the userspace data plane, each serving a connection: SIGTERM ends
    them with exit 0, nothing on stderr, and the connection cut."""
    backend = socket.create_server(("127.0.0.1", 0))
    port = backend.getsockname()[1]
    with socket.create_server(("127.0.0.1", 0)) as probe:
        relay_port = probe.getsockname()[1]  # free a moment ago
    program = {
        "harness.proxies.userspace": {
            "op": "program",
            "set": [
                {
                    "service": "web",
                    "listeners": [
                        {
                            "address": "127.0.0.1",
                            "port": relay_port,
                            "destinations": [["127.0.0.1", port]],
                        }
                    ],
                    "affinity_timeout_s": None,
                }
            ],
            "delete": [],
        },
        "harness.local.podserver": {
            "op": "add",
            "pods": [
                asdict(PodSpec("p", "web-0", "u1", None, "127.0.0.1", ((relay_port, "tcp"),)))
            ],
        },
    }
    try:
        for module, request in program.items():
            helper = subprocess.Popen(
                [sys.executable, "-m", module],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert helper.stdin is not None and helper.stdout is not None
            assert helper.stdout.readline() == b"ready\n"
            helper.stdin.write(json.dumps(request).encode() + b"\n")
            helper.stdin.flush()
            assert json.loads(helper.stdout.readline())["ok"]
            client = socket.create_connection(("127.0.0.1", relay_port), timeout=5)
            client.sendall(b"hello\n")
            time.sleep(0.2)
            helper.send_signal(signal.SIGTERM)
            _, err = helper.communicate(timeout=10)
            assert (helper.returncode, err) == (0, b""), module
            with contextlib.suppress(ConnectionResetError):  # else TimeoutError: not cut
                while client.recv(1024):
                    pass
            client.close()
    finally:
        backend.close()


@pytest.mark.parametrize("module", ["harness.local.podserver", "harness.proxies.userspace"])
def test_a_helper_whose_harness_stopped_reading_exits_quietly(module: str) -> None:
    """The harness, unwinding after a signal, closes its end of the helper's stdout before the
    helper's last reply is out: the helper still exits 0 with nothing on stderr (which it shares
    with the harness), not "Exception ignored ... BrokenPipeError" from Python's exit flush."""
    helper = subprocess.Popen(
        [sys.executable, "-m", module],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert helper.stdin is not None and helper.stdout is not None and helper.stderr is not None
    assert helper.stdout.readline() == b"ready\n"
    helper.stdout.close()  # the harness is gone from the pipe
    helper.stdin.write(b'{"op": "nosuch"}\n')  # its reply can no longer be written
    helper.stdin.close()
    assert helper.wait(10) == 0
    assert helper.stderr.read() == b""
    helper.stderr.close()
