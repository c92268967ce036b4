"""Plug-in tests: tests marked `netns` need root, iproute2 and network namespaces."""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() == 0 and shutil.which("ip") and shutil.which("setpriv"):
        return
    skip = pytest.mark.skip(reason="needs root, iproute2 and setpriv (network namespaces)")
    for item in items:
        if "netns" in item.keywords and str(item.fspath).startswith(os.path.dirname(__file__)):
            item.add_marker(skip)
