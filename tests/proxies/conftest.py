"""Fixtures for the kernel-rule proxy tests: a bare namespace of their own, a started proxy, and
a guard that the root namespace's rules are the same after each test as before it."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
    name = "hkt" + secrets.token_hex(4)
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)
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
