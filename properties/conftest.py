"""The conformance suite's pytest options: which target, how many examples, which seed.

`tox -e conformance` runs this directory. With no options it checks the embedded local cluster
with the iptables proxy; `--target kube` (with `--kubeconfig`/`--context` or a kind cluster)
checks a real cluster, `--target local:nftables` another proxy, `--target model` the reference.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from harness import registry
from harness.cli import DEFAULT_TARGET


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness conformance")
    group.addoption(
        "--target", default=DEFAULT_TARGET, help="target NAME[:ARG] (default: %(default)s)"
    )
    group.addoption("--examples", type=int, default=None, help="examples per property")
    group.addoption("--steps", type=int, default=None, help="most events per example")
    group.addoption("--seed", type=int, default=None, help="random seed (default: fresh, printed)")
    group.addoption("--deadline", type=float, default=None, help="programming deadline, seconds")
    group.addoption("--proxy-command", default=None, help="external proxy command")
    group.addoption("--kubeconfig", default=None)
    group.addoption("--context", default=None)
    group.addoption("--kind-cluster", default=None)
    group.addoption("--pods", default="cluster", choices=["cluster", "local"])


@pytest.fixture(scope="session")
def suite_settings(pytestconfig: pytest.Config) -> dict[str, Any]:
    seed = pytestconfig.getoption("seed")
    return {
        "target": pytestconfig.getoption("target"),
        "examples": pytestconfig.getoption("examples"),
        "steps": pytestconfig.getoption("steps"),
        "seed": seed if seed is not None else random.randrange(2**31),
        "deadline": pytestconfig.getoption("deadline"),
    }


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config, suite_settings: dict[str, Any]) -> Iterator[Any]:
    options = registry.TargetOptions(
        proxy_command=pytestconfig.getoption("proxy_command"),
        kubeconfig=pytestconfig.getoption("kubeconfig"),
        context=pytestconfig.getoption("context"),
        kind_cluster=pytestconfig.getoption("kind_cluster"),
        pods=pytestconfig.getoption("pods"),
        extra={"seed": suite_settings["seed"]},
    )
    chosen = registry.make_target(suite_settings["target"], options)
    chosen.open()
    try:
        yield chosen
    finally:
        chosen.close()


def pytest_report_header(config: pytest.Config) -> str:
    return f"harness conformance: target {config.getoption('target')}"
