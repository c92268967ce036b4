"""Fixtures for the local cluster's tests: a fresh run prefix per test, and proof it left nothing.

Other engineers run namespace tests on the same machine at the same time, so every test uses its
own prefix and cleanup is only ever asked about that prefix. That the root namespace is untouched
is checked for every test here by `tests/conftest.py` (`tests.hostsafety`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

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
    target = LocalTarget(UserspaceProxy, prefix=prefix)
    target.open()
    try:
        yield target
    finally:
        target.close()


@contextmanager
def opened_target(proxy: type, nodes: int) -> Iterator[LocalTarget]:
    """A local target of `nodes` nodes running `proxy`, open under a run prefix of its own;
    closed after, and then nothing named with that prefix may remain."""
    run = new_prefix()
    opened = LocalTarget(proxy, prefix=run, nodes=nodes)
    opened.open()
    try:
        yield opened
    finally:
        opened.close()
        assert clean(run, force=True) == [], f"the {nodes}-node target left something behind"
