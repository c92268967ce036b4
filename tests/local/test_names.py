"""Run names: short enough for interfaces, and recognisable by cleanup."""

from __future__ import annotations

import pytest

from harness.local.names import IFNAME_MAX, RunNames, check_prefix, new_prefix, run_of


def test_fresh_prefixes_are_run_prefixes_and_differ() -> None:
    prefixes = {new_prefix() for _ in range(50)}
    assert len(prefixes) > 45
    assert all(run_of(p) == p for p in prefixes)


def test_interface_names_fit_the_kernel_limit_for_large_clusters() -> None:
    names = RunNames("hkabcde")
    longest = [names.pod_veth(0xFFFFFFF), names.client_veth(9), names.bridge]
    assert all(len(n) <= IFNAME_MAX for n in longest)
    with pytest.raises(ValueError, match="longer than 15"):
        names.pod_veth(0xFFFFFFFF)


@pytest.mark.parametrize(
    ("name", "run"),
    [
        ("hkabcde-node", "hkabcde"),
        ("hkabcde-p1f", "hkabcde"),
        ("hkabcde", "hkabcde"),
        ("hkabcdef", None),  # six hex digits: not ours
        ("hkxyzab-node", None),
        ("hk12-node", None),
        ("other-node", None),
    ],
)
def test_run_of_recognises_only_run_names(name: str, run: str | None) -> None:
    assert run_of(name) == run


def test_check_prefix_refuses_what_cleanup_could_not_find() -> None:
    assert check_prefix("hk00a9f") == "hk00a9f"
    for bad in ("hk", "hkABCDE", "xx12345", "hk123456"):
        with pytest.raises(ValueError, match="five hex digits"):
            check_prefix(bad)
