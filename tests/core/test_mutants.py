"""The harness catches broken proxies: every model mutant fails the `quick` profile with a short
counterexample, and the reference raises no false alarm in 200 examples.

The same report, at full size and with the local cluster's mutants, is made by
`harness report --mutants` (tox -e report).
"""

from harness.mutation import mutation_report
from harness.targets.mutants import MUTANTS


def test_every_model_mutant_is_caught_and_the_reference_never_alarms(tmp_path):
    specs = [f"mutant:{name}" for name in MUTANTS]
    report = mutation_report(
        specs, references=("model",), reference_examples=200, seed=1, failures_dir=tmp_path
    )
    missed = {name: m for name, m in report["mutants"].items() if not m["caught"]}
    assert missed == {}
    assert report["median_counterexample_events"] <= 6, report["mutants"]
    assert all(m["reproduced"] == "1/1" for m in report["mutants"].values())
    reference = report["references"]["model"]
    assert reference["false_alarms"] == 0, reference["failed"]
    assert reference["examples"] == 200 and reference["error"] is None
