"""Fixtures for the kernel-rule proxy tests: a bare namespace of their own, a started proxy, and
a guard that the root namespace's rules are the same after each test as before it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.local.netns import scratch_namespace
from harness.proxies.base import NodeContext
from harness.proxies.rules.kernel_proxy import KernelRuleProxy

from .kernel_cases import root_rules


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh, bare namespace "hkt<hex>" (only `lo`, up), deleted afterwards; the root
    namespace's rules must be unchanged by the test."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    before = root_rules()
    with scratch_namespace() as name:
        yield name
    assert root_rules() == before, "the root namespace's rules changed"


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
