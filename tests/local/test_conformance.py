"""The conformance suite, briefly, on the local cluster with the userspace proxy: every property
holds (exact-balance is skipped: the userspace proxy has no rules to read back)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.conformance import Status, SuiteOptions, run_suite
from harness.proxies.userspace import UserspaceProxy
from harness.strategies import EventSpace
from harness.targets.local import LocalTarget
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root, pytest.mark.slow]


def test_the_suite_holds_on_the_userspace_proxy(prefix: str, tmp_path: Path) -> None:
    target = LocalTarget(UserspaceProxy(), prefix=prefix)
    target.open()
    try:
        options = SuiteOptions(
            examples=2,
            steps=8,
            seed=3,
            space=EventSpace(simulated=False, max_pods=10),
            failures_dir=tmp_path,
        )
        results = run_suite(target, options)
    finally:
        target.close()
    statuses = {r.name: r.status for r in results}
    assert statuses.pop("exact-balance") == Status.SKIPPED
    failed = {r.name: r.message for r in results if r.status == Status.FAILED}
    assert failed == {}
    assert all(status == Status.PASSED for status in statuses.values())
    assert all(r.events > 0 for r in results if r.status == Status.PASSED)
