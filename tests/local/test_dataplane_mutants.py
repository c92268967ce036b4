"""Every data-plane mutant proxy is caught by the suite on the local cluster, with a shrunk
counterexample that is saved for replay.

`exact-balance` is left out: it compares the programmed rules with the model directly, and these
runs show the other properties catch each broken data plane. (Their convergence wait still reads
the rules where a proxy can show them, so `programming-latency` sees a wrong rule set as a change
that never got programmed.) `programming-latency` runs first because it is the cheapest to fail:
a mutant that never converges costs every later search the full deadline on each step.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.checks import PROPERTIES, latency, rules
from harness.conformance import options_for
from harness.mutation import first_failure
from harness.proxies.mutants import MUTANT_PROXIES
from harness.registry import TargetOptions, make_target

pytestmark = pytest.mark.netns

ORDER = [latency.PROPERTY] + [p for p in PROPERTIES if p not in (latency.PROPERTY, rules.PROPERTY)]
MAX_COUNTEREXAMPLE_EVENTS = 6


def search(proxy: str, prefix: str, failures: Path) -> dict[str, object]:
    target = make_target(f"local:{proxy}", TargetOptions(prefix=prefix))
    target.open()
    try:
        options = options_for(
            target, seed=11, examples=10, steps=8, properties=ORDER, failures_dir=failures
        )
        return first_failure(
            target, replace(options, extra_shrink_tries=25, extra_shrink_seconds=40)
        )
    finally:
        target.close()


@pytest.mark.parametrize("mutant", sorted(MUTANT_PROXIES))
def test_data_plane_mutant_is_caught(mutant: str, prefix: str, tmp_path: Path) -> None:
    result = search(mutant, prefix, tmp_path)
    assert result["caught"], f"{mutant} passed the suite: {result}"
    assert 1 <= int(str(result["counterexample_events"])) <= MAX_COUNTEREXAMPLE_EVENTS, result
    assert list(tmp_path.glob("*.json")), "the shrunk counterexample was not saved"
