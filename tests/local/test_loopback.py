"""The loopback variant (`local:loopback`): the same target without namespaces or root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.events import CreateService, Scale, SetAffinity
from harness.local.loopback import LoopbackAddresses
from harness.model.objects import Affinity, labels_of
from harness.registry import TargetOptions
from harness.targets.local import LocalTarget
from harness.traffic import ErrorKind, TrafficRequest

WEB = labels_of({"app": "web"})
REPOSITORY = Path(__file__).resolve().parents[2]


def test_addresses_map_one_to_one_into_the_runs_loopback_range() -> None:
    addresses = LoopbackAddresses.for_prefix("hk000a1")
    octet = addresses.pod_octet
    assert addresses.pod("10.244.1.7") == f"127.{octet}.1.7"
    assert addresses.vip("10.96.0.10") == f"127.{octet + 1}.0.10"
    assert addresses.client(2) == f"127.{octet + 2}.0.2"
    assert addresses.port(80) == 10080 and addresses.port(8080) == 8080
    octets = {LoopbackAddresses.for_prefix(f"hk{n:05x}").pod_octet for n in range(1000)}
    assert min(octets) >= 2 and max(octets) + 2 <= 255


@pytest.fixture
def loopback(prefix: str) -> Iterator[LocalTarget]:
    target = LocalTarget.from_spec("loopback", TargetOptions(prefix=prefix))
    target.open()
    try:
        yield target
    finally:
        target.close()


def test_the_loopback_target_balances_rejects_and_keeps_affinity(loopback: LocalTarget) -> None:
    assert loopback.name == "local:loopback"
    loopback.apply(CreateService("web", WEB))
    refused = loopback.send(TrafficRequest("web", count=2))
    assert [o.error for o in refused.outcomes] == [ErrorKind.REFUSED] * 2
    loopback.apply(Scale("web", 3))
    assert set(loopback.send(TrafficRequest("web", count=9)).hits().values()) == {3}
    loopback.apply(SetAffinity("web", Affinity.CLIENT_IP, 60))
    chosen = [
        set(loopback.send(TrafficRequest("web", client=c, count=5)).hits())
        for c in ("client-1", "client-2", "client-3")
    ]
    assert all(len(c) == 1 for c in chosen) and len(set().union(*chosen)) == 3


SCRIPT = """
import sys
from harness.events import CreateService, Scale
from harness.model.objects import labels_of
from harness.registry import TargetOptions
from harness.traffic import TrafficRequest
from harness.targets.local import LocalTarget
target = LocalTarget.from_spec("loopback", TargetOptions(prefix=sys.argv[1]))
target.open()
try:
    target.apply(CreateService("web", labels_of({"app": "web"})))
    target.apply(Scale("web", 2))
    print(sorted(str(b) for b in target.send(TrafficRequest("web", count=4)).hits()))
finally:
    target.close()
"""


def unprivileged_python() -> str | None:
    """A Python the user `nobody` may run (this one may live under /root)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate) and all(
            os.stat(parent).st_mode & 0o001 for parent in Path(candidate).parents
        ):
            return candidate
    return None


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or unprivileged_python() is None,
    reason="needs root to switch to nobody, setpriv, and a Python nobody can run",
)
def test_an_unprivileged_user_runs_the_loopback_target(prefix: str) -> None:
    command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "HOME": "/tmp"}
    done = subprocess.run(
        [*command, str(unprivileged_python()), "-c", SCRIPT, prefix],
        capture_output=True, text=True, env=environment, timeout=60, check=False, cwd="/tmp",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['web-0/u1', 'web-1/u2']"
