"""The harness catches broken proxies: every model mutant fails the suite, the reference passes.

The same report, at full size, is written to reports/mutants.json by `tox -e report`.
"""

from harness.mutation import mutation_report
from harness.targets.mutants import MUTANTS


def test_every_mutant_is_caught_with_a_short_counterexample_and_the_reference_never_alarms(
    tmp_path,
):
    report = mutation_report(
        examples=100, reference_examples=200, steps=20, seed=1, failures_dir=tmp_path
    )
    assert set(report["mutants"]) == {f"mutant:{name}" for name in MUTANTS}
    missed = [name for name, m in report["mutants"].items() if not m["caught"]]
    assert missed == []
    assert report["median_counterexample_events"] <= 6
    assert report["reference"]["false_alarms"] == 0, report["reference"]["failed"]
    assert report["reference"]["examples_per_property"] >= 200
