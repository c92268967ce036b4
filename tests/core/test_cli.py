"""The command line: exit codes, one-line errors, output paths checked before anything starts,
failure files that replay with one paste, results and JUnit files for every outcome."""

import json
import shlex
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from harness import __version__
from harness.checks import PROPERTIES
from harness.cli import build_parser, main, run_context, target_options
from harness.errors import EnvironmentProblem, UsageError
from harness.failures import RunContext, _check_run, replay_command, run_context_of
from harness.targets.model import ModelTarget


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["run", "--target", "nosuch"], "unknown target 'nosuch'"),
        (["run", "--target", "mutant:nosuch"], "unknown mutant 'nosuch'"),
        (["run", "--target", "model:foo"], "the model target takes no argument"),
        (["run", "--target", "model", "--proxy-command", "x"], "does not apply to the model"),
        (["run", "--target", "local:haproxy", "--proxy-command", "x"], "takes no command"),
        (["run", "--target", "model", "--kubeconfig", "k"], "--kubeconfig is for --target kube"),
        (["run", "--target", "local:nftables", "--pods", "local"], "--pods is for --target kube"),
        (["run", "--target", "model", "--examples", "0"], "must be at least 1"),
        (["run", "--target", "model", "--deadline", "soon"], "expected a number of seconds"),
        (["run", "--target", "model", "--budget", "soon"], "not a duration"),
        (["run", "--target", "model", "--budget", "0s"], "not a positive duration"),
        (["run", "--target", "model", "--profile", "huge"], "unknown profile 'huge'"),
        (["run", "--target", "model", "--focus", "("], "not a valid regular expression"),
        (["run", "--target", "model", "--focus", "nothing-matches"], "select no property"),
        (["run", "--target", "model", "--results", "/nonexistent/dir/r.json"], "does not exist"),
        (["run", "--target", "model", "--junit", "/"], "is a directory"),
        (["run", "--target", "model", "--results", "."], "--results: . is a directory"),
        (["run", "--target", "model", "--failures-dir", "/nonexistent/a/b"], "does not exist"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_exit_2_and_start_nothing(capsys, tmp_path, argv, complaint):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert complaint in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "searched" not in out  # nothing ran
    assert not Path("/nonexistent").exists()


def test_a_bad_budget_in_the_environment_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_BUDGET", "a while")
    code, _, err = run(capsys, "run", "--target", "model", "--examples", "1")
    assert code == 2 and "HARNESS_BUDGET" in err and len(err.strip().splitlines()) == 1


def test_version_and_help_for_every_option(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and __version__ in capsys.readouterr().out
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subcommands.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"harness {name} {action.option_strings} has no help"


def test_reference_passes_with_results_and_junit(capsys, tmp_path):
    results, junit = tmp_path / "results.json", tmp_path / "junit.xml"
    code, out, _ = run(
        capsys,
        *("run", "--target", "model", "--examples", "20", "--seed", "1"),
        *("--results", str(results), "--junit", str(junit), "--failures-dir", str(tmp_path)),
    )
    assert code == 0
    judged = len(PROPERTIES) - 2  # exact-balance and proxy-contract need a proxy of the harness's
    assert f"properties: {judged} passed, 0 failed, 2 skipped, 0 not judged" in out
    assert "searched 20 examples, 20 distinct sequences" in out
    assert "coverage, checked/reached per state feature" in out
    document = json.loads(results.read_text())
    assert document["schema"] == "harness.results/v3" and document["outcome"] == "passed"
    assert document["search"]["examples"] == 20
    assert set(document["coverage"]) >= {"terminating-fallback", "vip-reused"}
    assert document["false_alarm_budget"]["run_alpha"] == 0.001
    statuses = {p["name"]: p["status"] for p in document["properties"]}
    assert statuses["exact-balance"] == "skipped" and statuses["endpoints"] == "passed"
    suite = ElementTree.parse(junit).getroot()
    assert suite.get("tests") == str(len(PROPERTIES)) and suite.get("failures") == "0"
    assert suite.get("skipped") == "2" and suite.get("errors") == "0"


def test_violation_exits_1_and_the_failure_file_alone_replays_it(capsys, tmp_path):
    results = tmp_path / "results.json"
    code, out, err = run(
        capsys,
        *("run", "--target", "mutant:keeps-deleted", "--examples", "60", "--seed", "2"),
        *("--deadline", "20", "--failures-dir", str(tmp_path), "--results", str(results)),
    )
    assert code == 1
    assert "Shrunk counterexample" in out and "FAILED" in err  # announced when found
    document = json.loads(results.read_text())
    failed = [p for p in document["properties"] if p["status"] == "failed"]
    assert failed and all(p["reproduced"] == "2/2" and not p["flaky"] for p in failed)
    replay = failed[0]["replay"]
    assert "--deadline 20.0" in replay and "--target mutant:keeps-deleted" in replay
    saved = json.loads(Path(failed[0]["failure_file"]).read_text())
    assert saved["failure"]["schema"] == "harness.failure/v2"
    assert saved["failure"]["run"]["options"] == {"deadline": 20.0}
    # judged with the run's budget: the samples, and the random draws they take, are the same
    budget = saved["failure"]["run"]["alarm_budget"]
    assert budget["max_checks"] == document["false_alarm_budget"]["max_checks"] > 1000
    code, out, _ = run(capsys, *shlex.split(replay)[1:])  # the printed command, pasted
    assert code == 1 and f"reproduced: {failed[0]['name']} failed at step" in out
    code, out, _ = run(capsys, "replay", failed[0]["failure_file"])  # the file alone
    assert code == 1 and "reproduced" in out
    code, out, _ = run(capsys, "replay", failed[0]["failure_file"], "--target", "model")
    assert code == 0 and "did not reproduce" in out
    code, _, err = run(capsys, "replay", failed[0]["failure_file"], "--context", "c")
    assert code == 2 and "--context is for --target kube, not mutant:keeps-deleted" in err


def test_replay_commands_carry_every_option_quoted():
    run = RunContext("local:external", 7, {"proxy_command": "python3 my proxy.py", "deadline": 2.0})
    command = replay_command(Path("f.json"), run)
    assert shlex.split(command) == [
        *("harness", "replay", "f.json", "--target", "local:external"),
        *("--proxy-command", "python3 my proxy.py", "--deadline", "2.0"),
    ]
    image = "docker.io/nicolaka/netshoot:v0.13"
    kube = RunContext("kube", 7, {"read_node_rules": image, "kubeconfig": "k"})
    assert shlex.split(replay_command(Path("f.json"), kube))[5:] == [
        *("--kubeconfig", "k", "--read-node-rules", image)
    ]
    options = target_options(build_parser().parse_args(["replay", "f.json"]), "kube", saved=kube)
    assert options.read_node_rules == image  # a replay reads the node's rules as the run did


def test_a_run_allowed_to_restart_the_cluster_proxy_replays_allowed_the_same():
    args = build_parser().parse_args(
        ["run", "--target", "kube", "--restart-cluster-proxy", "--proxy-selector", "app=kp"]
    )
    recorded = run_context("kube", 7, target_options(args, "kube"))
    assert recorded.options["restart_cluster_proxy"] is True
    assert shlex.split(replay_command(Path("f.json"), recorded))[-3:] == [
        *("--restart-cluster-proxy", "--proxy-selector", "app=kp")
    ]
    saved = run_context_of({"run": recorded.to_json()})
    replayed = target_options(build_parser().parse_args(["replay", "f.json"]), "kube", saved=saved)
    assert replayed.extra["restart_cluster_proxy"] is True
    assert replayed.extra["proxy_selector"] == "app=kp"
    plain = run_context("kube", 7, target_options(build_parser().parse_args(["run"]), "kube"))
    assert "restart_cluster_proxy" not in plain.options
    with pytest.raises(UsageError, match=r"options\.restart_cluster_proxy must be true"):
        _check_run({"target": "kube", "options": {"restart_cluster_proxy": "yes"}}, "f", True)


def test_an_environment_error_mid_run_is_exit_3_with_results_and_junit(
    capsys, tmp_path, monkeypatch
):
    calls = {"n": 0}
    apply = ModelTarget.apply

    def failing(self, event):
        calls["n"] += 1
        if calls["n"] == 40:
            raise EnvironmentProblem("the pod server exited")
        apply(self, event)

    monkeypatch.setattr(ModelTarget, "apply", failing)
    results, junit = tmp_path / "r.json", tmp_path / "j.xml"
    code, out, err = run(
        capsys,
        *("run", "--target", "model", "--examples", "20", "--results", str(results)),
        *("--junit", str(junit), "--failures-dir", str(tmp_path)),
    )
    assert code == 3 and "Traceback" not in err
    assert "environment or harness error: the pod server exited" in out
    document = json.loads(results.read_text())
    assert document["outcome"] == "error" and document["error"] == "the pod server exited"
    assert {p["status"] for p in document["properties"]} <= {"error", "skipped"}
    assert ElementTree.parse(junit).getroot().get("errors") == str(len(PROPERTIES) - 2)


def test_a_counterexample_that_cannot_be_saved_is_printed_and_kept(capsys, tmp_path, monkeypatch):
    import harness.failures as failures

    fallback = tmp_path / "fallback"
    monkeypatch.setattr(failures, "FALLBACK_DIR", fallback)
    original = failures.write_atomically

    def refuse_in_failures_dir(path, text):
        if path.parent == tmp_path / "failures":
            raise OSError(28, "No space left on device")
        original(path, text)

    monkeypatch.setattr(failures, "write_atomically", refuse_in_failures_dir)
    code, out, err = run(
        capsys,
        *("run", "--target", "mutant:keeps-deleted", "--examples", "60", "--seed", "2"),
        *("--focus", "^endpoints$", "--failures-dir", str(tmp_path / "failures")),
    )
    assert code == 1  # the verdict stands
    assert "No space left on device" in err and "Its events:" in err
    assert list(fallback.glob("endpoints-*.json")) and str(fallback) in out


def test_listings(capsys):
    code, out, _ = run(capsys, "targets")
    assert code == 0 and "model" in out and "mutant" in out and "local" in out
    assert "mutant-controller" in out
    code, out, _ = run(capsys, "properties")
    assert code == 0 and "fairness" in out and "proxy-contract" in out
    code, out, _ = run(capsys, "proxies")
    assert code == 0 and "iptables" in out and "(mutant)" in out


def test_console_script_is_installed():
    executable = Path(sys.executable).parent / "harness"
    assert executable.exists()
    done = subprocess.run([executable, "properties"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "endpoints" in done.stdout


def test_clean_passes_force_and_prefix_to_both_cleaners(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "harness.local.cleanup.clean",
        lambda prefix, force: calls.append(("local", prefix, force)) or [],
    )

    def kube(kubeconfig, context, prefix, force):
        from harness.kube.cleanup import Cleaned

        calls.append(("kube", prefix, force))
        return Cleaned(
            removed=["namespace/svc-lb-hk12345"], kept=["namespace/svc-lb-hk54321: alive"]
        )

    monkeypatch.setattr("harness.kube.cleanup.clean_kube", kube)
    code, out, _ = run(capsys, "clean", "--kube", "--prefix", "hk1", "--force")
    assert code == 0
    assert calls == [("local", "hk1", True), ("kube", "hk1", True)]
    assert "kept namespace/svc-lb-hk54321: alive" in out and "1 leftover(s) removed" in out
    calls.clear()
    run(capsys, "clean")
    assert calls == [("local", None, False)]


@pytest.mark.parametrize(
    "budget", [{"run_alpha": 2, "max_checks": 10}, {"run_alpha": 0.001, "max_checks": True}, "x"]
)
def test_a_failure_file_with_a_bad_budget_replays_with_the_default(budget: object) -> None:
    run = {"target": "model", "seed": 1, "options": {}, "alarm_budget": budget}
    context = run_context_of({"run": run})
    assert context is not None and context.alarm_budget is None
    good = {**run, "alarm_budget": {"run_alpha": 0.001, "max_checks": 500}}
    assert run_context_of({"run": good}).alarm_budget == {"run_alpha": 0.001, "max_checks": 500}
