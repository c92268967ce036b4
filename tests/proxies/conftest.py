"""Fixtures for the kernel-rule proxy tests: a bare namespace of their own and a started proxy.
That the root namespace is untouched is checked for every test here by `tests/conftest.py`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.local.netns import scratch_namespace
from harness.proxies.base import NodeContext
from harness.proxies.rules.kernel_proxy import KernelRuleProxy


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh, bare namespace `<run prefix>-scratch` (only `lo`, up), deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    with scratch_namespace() as name:
        yield name


ProxyFactory = Callable[[type[KernelRuleProxy]], KernelRuleProxy]


@pytest.fixture
def start_proxy(netns: str, tmp_path: Path) -> Iterator[ProxyFactory]:
    """Start proxies of any kernel-rule class in the test namespace; all are stopped after."""
    started: list[KernelRuleProxy] = []

    def start(cls: type[KernelRuleProxy]) -> KernelRuleProxy:
        proxy = cls()
        proxy.start(NodeContext("node-1", netns, "hkt0", tmp_path))
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()
