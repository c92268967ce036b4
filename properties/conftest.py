"""The conformance suite's pytest options and its one search.

`tox -e conformance` runs this directory. With no options it checks the embedded local cluster
with the iptables proxy on the `quick` profile; `--target kube` (with `--kubeconfig`/`--context`
or a kind cluster) checks a real cluster, `--target local:nftables` another proxy, `--target
model` the reference. One search serves every property (`harness.conformance.run_suite`): the
session runs it once, and each test reports one property's verdict from it.

A problem that stops the run (a missing kubeconfig, no root, an unwritable --results path) is
reported once, as one line, and ends the session with the harness's exit code (2 usage, 3
environment), never as a traceback per property.
"""

from __future__ import annotations

import io
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import registry
from harness.cli import DEFAULT_TARGET, made_with_nodes, proxy_restart_extra, run_context
from harness.conformance import SuiteResult, options_for, run_target
from harness.errors import HarnessError, UsageError
from harness.files import check_output_file, prepare_output_dir
from harness.model.objects import RUN_NODES
from harness.profiles import PROFILES, parse_duration, profile_named
from harness.results import RunReport, print_summary, write_json, write_junit

SUITE_PROFILE = "quick"
_RUN: dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness conformance")
    add = group.addoption
    add("--target", default=DEFAULT_TARGET, help="target NAME[:ARG] (default: %(default)s)")
    add("--profile", default=SUITE_PROFILE, help=f"{', '.join(PROFILES)} (default: %(default)s)")
    add("--budget", default=None, help="stop the search after this wall time, e.g. 90s, 5m")
    add("--examples", type=int, default=None, help="stop the search after this many examples")
    add("--steps", type=int, default=None, help="events per example")
    add("--seed", type=int, default=None, help="random seed (default: fresh, printed)")
    add("--deadline", type=float, default=None, help="programming deadline, seconds")
    add("--nodes", type=int, default=None, help="local targets: node namespaces (default 2)")
    add("--proxy-command", default=None, help="external proxy command")
    add("--kubeconfig", default=None, help="kubeconfig for --target kube")
    add("--context", default=None, help="kubeconfig context for --target kube")
    add("--kind-cluster", default=None, help="--target kube: create this kind cluster")
    add("--pods", default=None, choices=["cluster", "local"], help="--target kube: pods where")
    add("--restart-cluster-proxy", action="store_true", help="--target kube: restart kube-proxy")
    add("--proxy-selector", default=None, help="kube-proxy's pods in kube-system (a selector)")
    add("--kube-sctp", action="store_true", help="--target kube: SCTP (sctp module on every node)")
    add("--results", default=None, help="also write the harness's JSON results file here")
    add("--junit", default=None, help="also write the harness's JUnit XML here")
    add("--failures-dir", default="reports/failures", help="where counterexamples are saved")


def _stop(error: HarnessError) -> None:
    pytest.exit(f"harness: {error}", returncode=error.exit_code)


def _run_suite(config: pytest.Config) -> tuple[SuiteResult, RunReport]:
    """The one search of the session, with every output checked before it starts."""
    option = config.getoption
    seed = option("seed") if option("seed") is not None else random.randrange(2**31)
    for path, flag in ((option("results"), "--results"), (option("junit"), "--junit")):
        if path:
            check_output_file(Path(path), flag)
    failures = Path(option("failures_dir"))
    prepare_output_dir(failures, "--failures-dir")
    try:
        profile = profile_named(option("profile"))
        budget = option("budget") or os.environ.get("HARNESS_BUDGET")
        budget_s = parse_duration(budget) if budget else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    target_options = registry.TargetOptions(
        proxy_command=option("proxy_command"),
        kubeconfig=option("kubeconfig"),
        context=option("context"),
        kind_cluster=option("kind_cluster"),
        pods=option("pods") or "cluster",
        deadline_s=option("deadline") or 30.0,
        nodes=option("nodes") or RUN_NODES,
        extra={
            "seed": seed,
            "deadline_given": option("deadline") is not None,
            **proxy_restart_extra(option("restart_cluster_proxy"), option("proxy_selector")),
            **({"sctp": True} if option("kube_sctp") else {}),
        },
    )
    spec = option("target")
    target = registry.make_target(spec, target_options)
    target_options = made_with_nodes(target, option("nodes"), spec, target_options)
    options = options_for(
        target,
        seed=seed,
        profile=profile,
        examples=option("examples"),
        steps=option("steps"),
        budget_s=budget_s,
        deadline_s=option("deadline"),
        failures_dir=failures,
        run=run_context(spec, seed, target_options),
    )
    started = time.monotonic()
    suite = run_target(target, options)
    report = RunReport(suite, profile.name, time.monotonic() - started)
    if option("results"):
        write_json(report, Path(option("results")))
    if option("junit"):
        write_junit(report, Path(option("junit")))
    return suite, report


@pytest.fixture(scope="session")
def suite(pytestconfig: pytest.Config) -> Iterator[SuiteResult]:
    """The session's one conformance run; a harness error ends the session in one line."""
    if "suite" not in _RUN:
        try:
            _RUN["suite"], _RUN["report"] = _run_suite(pytestconfig)
        except HarnessError as error:
            _stop(error)
        if _RUN["suite"].error is not None or _RUN["suite"].interrupted:
            code = 130 if _RUN["suite"].interrupted else 3
            pytest.exit(f"harness: {_RUN['suite'].error or 'interrupted'}", returncode=code)
    yield _RUN["suite"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    report = _RUN.get("report")
    if report is not None:
        text = io.StringIO()
        print_summary(report, text)
        terminalreporter.write(text.getvalue())


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"harness conformance: target {config.getoption('target')},"
        f" profile {config.getoption('profile')}"
    )
