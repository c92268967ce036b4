"""The command line: exit codes, one-line errors, failure files that replay, results files."""

import json
import shutil
import subprocess
from xml.etree import ElementTree

import pytest

from harness.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["run", "--target", "nosuch"], "unknown target 'nosuch'"),
        (["run", "--target", "mutant:nosuch"], "unknown mutant 'nosuch'"),
        (["run", "--target", "model", "--examples", "0"], "must be at least 1"),
        (["run", "--target", "model", "--deadline", "soon"], "expected a number of seconds"),
        (["run", "--target", "model", "--focus", "("], "not a valid regular expression"),
        (["run", "--target", "model", "--focus", "nothing-matches"], "select no property"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(capsys, argv, complaint):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert complaint in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_sequence_files_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "harness.sequence/v0", "events": []}))
    code, _, err = run(capsys, "replay", str(bad), "--target", "model")
    assert code == 2 and "harness.sequence/v0" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "replay", str(tmp_path / "missing.json"), "--target", "model")
    assert code == 2 and "cannot read" in err


def test_reference_passes_with_results_and_junit(capsys, tmp_path):
    results, junit = tmp_path / "results.json", tmp_path / "junit.xml"
    code, out, _ = run(
        capsys,
        "run",
        "--target",
        "model",
        "--examples",
        "5",
        "--seed",
        "1",
        "--results",
        str(results),
        "--junit",
        str(junit),
        "--failures-dir",
        str(tmp_path),
    )
    assert code == 0
    assert "properties: 7 passed, 0 failed, 1 skipped" in out
    document = json.loads(results.read_text())
    assert document["schema"] == "harness.results/v1"
    statuses = {p["name"]: p["status"] for p in document["properties"]}
    assert statuses["exact-balance"] == "skipped" and statuses["endpoints"] == "passed"
    suite = ElementTree.parse(junit).getroot()
    assert (
        suite.get("tests") == "8" and suite.get("failures") == "0" and suite.get("skipped") == "1"
    )


def test_violation_exits_1_saves_a_replayable_failure(capsys, tmp_path):
    results = tmp_path / "results.json"
    code, out, _ = run(
        capsys,
        "run",
        "--target",
        "mutant:keeps-deleted",
        "--examples",
        "30",
        "--seed",
        "2",
        "--focus",
        "^endpoints$",
        "--failures-dir",
        str(tmp_path),
        "--results",
        str(results),
    )
    assert code == 1
    assert "endpoints failed. Shrunk counterexample" in out
    failure_files = list(tmp_path.glob("endpoints-mutant-keeps-deleted-*.json"))
    assert len(failure_files) == 1
    saved = json.loads(failure_files[0].read_text())
    assert saved["failure"]["property"] == "endpoints" and saved["history"]
    assert json.loads(results.read_text())["properties"][0]["replay"].startswith("harness replay")
    code, out, _ = run(capsys, "replay", str(failure_files[0]), "--target", "mutant:keeps-deleted")
    assert code == 1 and "violation at step" in out
    code, out, _ = run(capsys, "replay", str(failure_files[0]), "--target", "model")
    assert code == 0 and "all" in out and "steps hold" in out


def test_listings(capsys):
    code, out, _ = run(capsys, "targets")
    assert code == 0 and "model" in out and "mutant" in out and "local" in out
    code, out, _ = run(capsys, "properties")
    assert code == 0 and "fairness" in out
    code, out, _ = run(capsys, "proxies")
    assert code == 0 and "iptables" in out and "(mutant)" in out


def test_console_script_is_installed():
    executable = shutil.which("harness")
    assert executable is not None
    done = subprocess.run([executable, "properties"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "endpoints" in done.stdout
