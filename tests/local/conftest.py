"""Fixtures for the local cluster's tests: a fresh run prefix per test, and proof it left nothing.

Other engineers run namespace tests on the same machine at the same time, so every test uses its
own prefix and cleanup is only ever asked about that prefix.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from harness.local.cleanup import clean
from harness.local.names import new_prefix
from harness.proxies.userspace import UserspaceProxy
from harness.targets.local import LocalTarget

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


@pytest.fixture
def prefix() -> Iterator[str]:
    """A run prefix of this test alone; after the test nothing named with it may remain."""
    run = new_prefix()
    yield run
    leftovers = clean(run, force=True)
    assert leftovers == [], f"the test left {leftovers}"


@pytest.fixture
def userspace_target(prefix: str) -> Iterator[LocalTarget]:
    target = LocalTarget(UserspaceProxy(), prefix=prefix)
    target.open()
    try:
        yield target
    finally:
        target.close()


def root_snapshot() -> dict[str, str]:
    """What a run must never change in the root namespace."""
    commands = {
        "addr": ["ip", "-o", "addr"],
        "link": ["ip", "-o", "link"],
        "route": ["ip", "route", "show", "table", "all"],
        "iptables": ["iptables-save"],
        "nft": ["nft", "list", "ruleset"],
        "sysctl": [
            "sysctl",
            "net.ipv4.ip_forward",
            "net.bridge.bridge-nf-call-iptables",
            "net.ipv4.ip_local_port_range",
        ],
    }
    snapshot = {}
    for name, command in commands.items():
        output = subprocess.run(command, capture_output=True, text=True, check=False).stdout
        # counters change with other people's traffic; the rules themselves must not
        lines = [line for line in output.splitlines() if not line.startswith("#")]
        snapshot[name] = "\n".join(_without_counters(line) for line in lines)
    return snapshot


def _without_counters(line: str) -> str:
    if line.startswith(":"):  # iptables-save chain line ":CHAIN POLICY [packets:bytes]"
        return line.rsplit(" ", 1)[0]
    return line
