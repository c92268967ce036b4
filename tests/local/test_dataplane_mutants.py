"""Every data-plane mutant proxy is caught by the suite on real traffic, with a shrunk
counterexample; the real proxies they derive from pass the same search.

`exact-balance` (the rule oracle) is left out on purpose: these runs show the traffic properties
alone catch each broken data plane end to end through the kernel.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.checks import PROPERTIES, rules
from harness.conformance import options_for
from harness.mutation import first_failure
from harness.proxies.mutants import MUTANT_PROXIES
from harness.registry import TargetOptions, make_target

pytestmark = pytest.mark.netns

TRAFFIC_PROPERTIES = [p for p in PROPERTIES if p != rules.PROPERTY]
MAX_COUNTEREXAMPLE_EVENTS = 6


def caught(proxy: str, prefix: str, failures: Path) -> dict[str, object]:
    target = make_target(f"local:{proxy}", TargetOptions(prefix=prefix))
    target.open()
    try:
        options = options_for(
            target,
            seed=11,
            examples=15,
            steps=10,
            properties=TRAFFIC_PROPERTIES,
            failures_dir=failures,
        )
        return first_failure(target, options)
    finally:
        target.close()


@pytest.mark.parametrize("mutant", sorted(MUTANT_PROXIES))
def test_data_plane_mutant_is_caught_on_real_traffic(mutant: str, prefix: str, tmp_path: Path) -> None:
    result = caught(mutant, prefix, tmp_path)
    assert result["caught"], f"{mutant} passed the suite: {result}"
    assert 1 <= int(str(result["counterexample_events"])) <= MAX_COUNTEREXAMPLE_EVENTS, result
    assert list(tmp_path.glob("*.json")), "the shrunk counterexample was not saved"
