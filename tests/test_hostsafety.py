"""The root-namespace guard (`tests.hostsafety`) sees every kind of change it promises to see, and
none of the noise it promises to ignore.

The guard reads the namespace of the thread that calls it, so these tests point it at a scratch
namespace of their own and change that one: the real root namespace is never changed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import cast

import pytest

from harness.local.names import netns_path
from harness.local.netns import in_thread, scratch_namespace, setns
from tests.conftest import touches_the_network
from tests.hostsafety import RootGuard, RootSnapshot, root_changes

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

CHANGES = [
    ["ip", "addr", "add", "10.250.99.1/24", "dev", "lo"],
    ["ip", "route", "add", "10.250.98.0/24", "dev", "lo"],
    ["ip", "rule", "add", "from", "10.250.97.0/24", "table", "97"],
    ["iptables", "-A", "INPUT", "-s", "10.250.96.0/24", "-j", "ACCEPT"],
    ["nft", "add", "table", "inet", "guardtest"],
]


def snapshot(**sections: tuple[str, ...]) -> RootSnapshot:
    names = ("link", "addr", "route", "rule", "iptables", "nft")
    return RootSnapshot({name: sections.get(name, ()) for name in names}, {})


def test_a_changed_line_is_shown_in_a_diff_of_its_section() -> None:
    before = snapshot(route=("default via 192.0.2.1 dev eth0",))
    after = snapshot(route=("default via 192.0.2.1 dev eth0", "10.0.0.0/8 dev eth0"))
    changes = root_changes(before, after, set())
    assert "--- route before" in changes and "+10.0.0.0/8 dev eth0" in changes


def test_lines_of_other_present_runs_are_left_out_and_ones_own_are_compared() -> None:
    before = snapshot(link=("1: lo",))
    after = snapshot(link=("1: lo", "9: hk1a2b3br: <UP>", "10: hk4c5d6p0@if2: <UP>"))
    shown = "\n".join(root_changes(before, after, {"hk1a2b3"}))
    assert "hk1a2b3br" not in shown and "+10: hk4c5d6p0@if2" in shown
    assert root_changes(before, after, {"hk1a2b3", "hk4c5d6"}) == []


def test_counters_and_module_loads_are_not_changes_but_a_sysctl_value_is() -> None:
    before = RootSnapshot(snapshot().sections, {"net.ipv4.ip_forward": "0", **NOISE_BEFORE})
    same = RootSnapshot(snapshot().sections, {"net.ipv4.ip_forward": "0", **NOISE_AFTER})
    assert root_changes(before, same, set()) == []
    changed = RootSnapshot(snapshot().sections, {"net.ipv4.ip_forward": "1", **NOISE_AFTER})
    assert "+net.ipv4.ip_forward = 1" in root_changes(before, changed, set())


NOISE_BEFORE = {
    "net.netfilter.nf_conntrack_count": "3",
    "net.ipv4.tcp_available_congestion_control": "reno cubic",
}
NOISE_AFTER = {
    "net.netfilter.nf_conntrack_count": "40",
    "net.ipv4.tcp_available_congestion_control": "reno cubic bbr",
    "net.netfilter.nf_conntrack_max": "262144",  # a module loaded meanwhile
}


@pytest.mark.netns
@needs_root
def test_the_guard_sees_every_kind_of_change_in_a_namespace() -> None:
    with scratch_namespace() as name:

        def change_and_check() -> str:
            setns(netns_path(name))
            guard = RootGuard("the change")
            guard.check()  # nothing changed yet: no false alarm
            for argv in CHANGES:
                subprocess.run(argv, check=True, capture_output=True, timeout=30)
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
            with pytest.raises(AssertionError) as raised:
                guard.check()
            return str(raised.value)

        message = in_thread(change_and_check)
    for expected in (
        "+1: lo    inet 10.250.99.1/24",
        "+10.250.98.0/24 dev lo",
        "from 10.250.97.0/24 lookup 97",
        "+-A INPUT -s 10.250.96.0/24 -j ACCEPT",
        "+table inet guardtest {",
        "+net.ipv4.ip_forward = 1",
    ):
        assert expected in message, f"{expected!r} not in:\n{message}"


class StubItem:
    """What `touches_the_network` reads of a pytest item: its path and its markers."""

    def __init__(self, path: Path, markers: tuple[str, ...] = ()) -> None:
        self.path = path
        self.markers = markers

    def get_closest_marker(self, name: str) -> str | None:
        return name if name in self.markers else None


@pytest.mark.parametrize(
    ("relative", "markers", "guarded"),
    [
        ("local/test_cluster.py", (), True),
        ("local/test_loopback.py", (), True),  # local:loopback runs in the root namespace
        ("proxies/test_rule_tracing.py", (), True),
        ("plugins/test_external.py", (), True),
        ("kube/test_kubelet.py", ("netns",), True),
        ("kube/test_api.py", (), False),
        ("core/test_model.py", (), False),
    ],
)
def test_which_tests_are_guarded(relative: str, markers: tuple[str, ...], guarded: bool) -> None:
    item = StubItem(Path(__file__).parent / relative, markers)
    assert touches_the_network(cast(pytest.Item, item)) is guarded
