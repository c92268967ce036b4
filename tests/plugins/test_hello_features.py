"""The hello reply's optional `features` (docs/candidate-proxy.md): kept, checked, optional."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.features import CORE_FEATURES
from harness.proxies.external import ExternalProxy
from harness.proxies.protocol import ProtocolError, parse_reply
from harness.targets.base import target_features
from tests.plugins.fakes import fake_proxy
from tests.plugins.test_external import FAST, node, started


class _Target:
    """The one thing `target_features` reads of a local target: its proxy."""

    name = "local:external"

    def __init__(self, proxy: ExternalProxy) -> None:
        self.proxy = proxy


def test_the_features_a_proxy_declares_in_hello_are_kept(tmp_path: Path) -> None:
    proxy, _ = started(tmp_path, "declares_features")
    try:
        assert proxy.declared_features is not None
        assert "internal-traffic-policy" in proxy.declared_features
        supported, origin = target_features(_Target(proxy))
        assert supported == CORE_FEATURES | {"internal-traffic-policy"}
        assert origin == "hello reply"
    finally:
        proxy.stop()


def test_a_hello_without_features_means_core_only(tmp_path: Path) -> None:
    proxy, _ = started(tmp_path, "good")
    try:
        assert proxy.declared_features is None
        supported, origin = target_features(_Target(proxy))
        assert supported == CORE_FEATURES
        assert origin.startswith("core only")
    finally:
        proxy.stop()


@pytest.mark.parametrize(
    ("behaviour", "named"),
    [("unknown_feature", "unknown feature(s) teleport"), ("omits_core", "omits core")],
)
def test_a_bad_declaration_is_one_usage_line_and_the_proxy_is_stopped(
    tmp_path: Path, behaviour: str, named: str
) -> None:
    command, _ = fake_proxy(tmp_path, behaviour)
    proxy = ExternalProxy(command, timeouts=FAST, enter_netns=False)
    with pytest.raises(UsageError) as raised:
        proxy.start(node(tmp_path))
    assert named in str(raised.value)
    assert "\n" not in str(raised.value)
    assert proxy._process is None  # stopped: nothing left running


def test_the_schema_accepts_features_in_a_reply_and_refuses_a_bad_shape() -> None:
    assert parse_reply(b'{"ok": true, "features": ["clusterip-tcp"]}\n')["features"] == [
        "clusterip-tcp"
    ]
    with pytest.raises(ProtocolError):
        parse_reply(b'{"ok": true, "features": "clusterip-tcp"}\n')
    with pytest.raises(ProtocolError):
        parse_reply(b'{"ok": true, "features": ["a", "a"]}\n')


@pytest.mark.netns
def test_harness_run_with_a_bad_hello_declaration_is_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command, _ = fake_proxy(tmp_path, "unknown_feature")
    results = tmp_path / "results.json"
    code = main(
        [
            *("run", "--target", "local:external", "--proxy-command", command),
            *("--examples", "1", "--results", str(results), "--failures-dir", str(tmp_path)),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "unknown feature(s) teleport" in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("harness: ")] == [
        line for line in err.splitlines() if "teleport" in line
    ]
    assert not results.exists() and not list(tmp_path.glob("conformance*"))
