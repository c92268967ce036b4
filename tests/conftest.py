"""Every test that may touch the host's network proves afterwards that it left it alone.

Which tests: every test marked `netns` (wherever it lives, for example the kubelet-less kube
tests) and every test in `tests/local`, `tests/proxies` and `tests/plugins`, which run local
targets, proxies and their processes (with or without namespaces: `local:loopback` runs in the
root namespace). Each gets a snapshot of the root namespace before it and a comparison after it
(`tests.hostsafety`: addresses, links, routes, policy rules, iptables, nftables, sysctls); a
change fails the test at teardown with a diff. Tests that cannot run as they are (no root) are
skipped before this fixture runs, and without root nothing is compared: the snapshot's tools need
CAP_NET_ADMIN, and a process without it cannot change the root namespace either.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostsafety import RootGuard

TESTS = Path(__file__).resolve().parent
GUARDED_FOLDERS = tuple(TESTS / name for name in ("local", "proxies", "plugins"))


def touches_the_network(item: pytest.Item) -> bool:
    """Whether the test runs local targets, proxies or namespaces (see the module docstring)."""
    path = Path(str(item.path)).resolve()
    in_folder = any(path.is_relative_to(folder) for folder in GUARDED_FOLDERS)
    return in_folder or item.get_closest_marker("netns") is not None


@pytest.fixture(autouse=True)
def root_namespace_untouched(request: pytest.FixtureRequest) -> Iterator[None]:
    """Autouse, so set up before and torn down after the test's own fixtures (its runs are
    closed and cleaned when the comparison runs)."""
    if os.geteuid() != 0 or not touches_the_network(request.node):
        yield
        return
    guard = RootGuard(f"test {request.node.nodeid}")
    yield
    guard.check()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """tox -e mutants runs the `serial` tests in a session of their own (tox.ini); when its
    arguments name only other tests, that session selects none, which is not a failure."""
    selection = str(session.config.getoption("markexpr", "") or "")
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and selection.startswith("serial"):
        session.exitstatus = pytest.ExitCode.OK
