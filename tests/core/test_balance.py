"""The deep profile's balancing probe: a uniform balancer passes at every n from 2 to 10, and
kube-proxy's two-decimal probabilities (kubernetes#37932) fail it where they skew a share by
2-4% (n = 7 and 8), which no per-step sample can see."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from harness.balance import DEVIATION, balance_sequences
from harness.model.objects import Destination
from harness.runner import replay
from harness.targets.model import ModelTarget


class TwoDecimalChain(ModelTarget):
    """iptables' probability chain with each rule's 1/(n-i) printed with two decimals."""

    def choose(self, destinations: Sequence[Destination]) -> Destination:
        n = len(destinations)
        for index, destination in enumerate(destinations[:-1]):
            if self._random.random() < round(1.0 / (n - index), 2):
                return destination
        return destinations[-1]


def probe(target: ModelTarget, n: int) -> list[dict[str, object]]:
    (sequence,) = balance_sequences(range(n, n + 1))
    runner = replay(target, sequence)
    record = runner.history.records[-1]
    assert record["event"]["deviation"] == DEVIATION
    return record["verdicts"] if isinstance(record["verdicts"], list) else []


@pytest.mark.parametrize("n", range(2, 11))
def test_a_uniform_balancer_passes_the_probe(n: int) -> None:
    assert probe(ModelTarget(seed=n), n) == []


@pytest.mark.parametrize("n", [7, 8])
def test_two_decimal_probabilities_fail_the_probe(n: int) -> None:
    failures = probe(TwoDecimalChain(seed=n), n)
    assert [v["property"] for v in failures] == ["fairness"]
    assert failures[0]["evidence"]["largest_deviation"] >= DEVIATION


def test_the_probe_samples_enough_to_state_its_power() -> None:
    runner = replay(ModelTarget(seed=1), balance_sequences(range(10, 11))[0])
    observed = runner.history.records[-1]["services"]["svc-a"]
    assert observed["requests"] >= 500_000  # about 770,000 at n = 10 and alpha 5e-7


def test_the_deep_profile_runs_the_probe_first() -> None:
    from harness.conformance import options_for, run_suite
    from harness.profiles import PROFILES

    target = ModelTarget(seed=1)
    options = options_for(target, seed=1, profile=PROFILES["deep"], examples=9)
    assert len(options.fixed) == 9
    suite = run_suite(target, options)
    probes = [s for s in suite.stats.sequences if '"deviation": 0.02' in s]
    assert len(probes) == 9 and suite.stats.examples == 9
