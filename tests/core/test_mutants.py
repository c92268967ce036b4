"""The harness catches broken proxies: every model mutant fails the `quick` profile with a short
counterexample, and the reference raises no false alarm in 200 examples.

The same report, at full size and with the local cluster's mutants, is made by
`harness report --mutants` (tox -e report).
"""

from harness.conformance import PropertyResult, Status
from harness.mutation import headline_finding, mutation_report
from harness.targets.mutants import MUTANTS


def test_every_model_mutant_is_caught_and_the_reference_never_alarms(tmp_path):
    specs = [f"mutant:{name}" for name in MUTANTS]
    report = mutation_report(
        specs, references=("model",), reference_examples=200, seed=1, failures_dir=tmp_path
    )
    missed = {name: m for name, m in report["mutants"].items() if not m["caught"]}
    assert missed == {}
    assert report["median_counterexample_events"] <= 6, report["mutants"]
    assert all(m["reproduced"] == "2/2" for m in report["mutants"].values())
    reference = report["references"]["model"]
    assert reference["false_alarms"] == 0, reference["failed"]
    assert reference["examples"] == 200 and reference["error"] is None


def test_a_mutant_is_reported_with_its_confirmed_finding_before_a_chance_one():
    """A traffic property can fail by chance while another property's counterexample is shrunk
    (a sample that happened to reach the stale endpoint); the mutation report quotes the
    confirmed finding, and the first found only when none was confirmed."""
    chance = PropertyResult("availability", Status.FAILED, flaky=True, found_after_s=1.0)
    deadline = PropertyResult("programming-latency", Status.FAILED, found_after_s=2.0)
    stale = PropertyResult("no-stale-traffic", Status.FAILED, found_after_s=3.0)
    assert headline_finding([chance, deadline]) is deadline
    assert headline_finding([chance, deadline, stale]) is stale  # more specific than the deadline
    late_chance = PropertyResult("fairness", Status.FAILED, flaky=True, found_after_s=4.0)
    assert headline_finding([late_chance, chance]) is chance  # none confirmed: the first found
