"""A proxy process that dies in the middle of a run is one `proxy-contract` verdict naming its
exit, not a scatter of other properties' failures; one that cannot start at all is an environment
error (exit 3, one line), never a verdict."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from harness import registry
from harness.checks import PROXY_CONTRACT
from harness.cli import main
from harness.conformance import Status, options_for, run_suite
from harness.errors import EnvironmentProblem
from harness.profiles import PROFILES
from harness.proxies.external import ExternalProxy, Timeouts
from harness.search import SearchStats
from harness.targets.local import LocalTarget
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

EXAMPLE = Path(__file__).parents[2] / "examples" / "candidate-proxy" / "proxy.py"


def test_a_proxy_killed_mid_run_is_one_proxy_contract_verdict(prefix: str, tmp_path: Path) -> None:
    options = registry.TargetOptions(proxy_command=f"{sys.executable} {EXAMPLE}", prefix=prefix)
    target = registry.make_target("local:external", options)
    suite_options = options_for(
        target, seed=4, profile=PROFILES["quick"], examples=6, steps=8, failures_dir=tmp_path
    )
    killed: list[int] = []

    def kill_once(stats: SearchStats, _limits: object) -> None:
        process = getattr(target.proxy, "_process", None)
        if not killed and stats.events >= 12 and process is not None and process.alive():
            killed.append(process.pid)
            os.killpg(process.pid, signal.SIGKILL)

    target.open()
    try:
        suite = run_suite(target, suite_options, on_progress=kill_once)
    finally:
        target.close()
    assert killed
    statuses = {r.name: r.status for r in suite.results}
    assert statuses.pop(PROXY_CONTRACT) == Status.FAILED
    assert all(s in (Status.PASSED, Status.SKIPPED) for s in statuses.values()), statuses
    (death,) = suite.failed
    told = ("killed by SIGKILL", "exited", "did not answer")  # which: who sees the death first
    assert any(words in death.message for words in told), death.message
    assert suite.stats.examples == 6  # the search went on with a fresh proxy


def test_a_proxy_that_cannot_start_is_an_environment_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(
        [
            *("run", "--target", "local:external", "--examples", "1"),
            *("--proxy-command", "no-such-proxy-binary --flag", "--failures-dir", str(tmp_path)),
        ]
    )
    err = capsys.readouterr().err
    assert code == 3, err
    assert "the proxy could not start" in err and "not found" in err
    assert "Traceback" not in err and not list(tmp_path.glob("*.json"))


def test_a_proxy_silent_at_hello_is_an_environment_error(prefix: str) -> None:
    target = LocalTarget(
        lambda: ExternalProxy("sleep 60", timeouts=Timeouts(hello_s=1.0)), prefix=prefix
    )
    with pytest.raises(EnvironmentProblem, match="did not answer hello"):
        target.open()
    assert target.cluster is None  # nothing left open


def test_a_proxy_whose_successor_cannot_start_is_one_proxy_contract_verdict(
    prefix: str, tmp_path: Path
) -> None:
    """A proxy that leaves its route behind at shutdown breaks the next fresh process's start
    (`ip route add` finds it): one proxy-contract verdict, reproduced from the saved sequence,
    never an environment error for the whole run."""
    leaky = tmp_path / "leaky.py"
    leaky.write_text(
        EXAMPLE.read_text()
        .replace('"route", "replace"', '"route", "add"')
        .replace('subprocess.run(["ip", "route", "del", *vip_route], check=True)', "pass")
    )
    options = registry.TargetOptions(proxy_command=f"{sys.executable} {leaky}", prefix=prefix)
    target = registry.make_target("local:external", options)
    suite_options = options_for(
        target, seed=5, profile=PROFILES["quick"], examples=3, steps=4, failures_dir=tmp_path
    )
    target.open()
    try:
        suite = run_suite(target, suite_options)
    finally:
        target.close()
    assert suite.error is None
    (broken,) = suite.failed
    assert broken.name == PROXY_CONTRACT and "refused hello" in broken.message
    assert broken.reproduced == "2/2" and broken.counterexample
