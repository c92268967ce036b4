"""How big each benchmark runs: the `full` profile (the figures a report publishes) or `quick`
(seconds in all, to check that every benchmark runs and where its figures go).

HARNESS_BENCH_PROFILE picks the profile (default `full`); HARNESS_BENCH_<NAME> overrides one
size whatever the profile. Read once, at import, so every benchmark of a session sees the same.
A value that cannot be used stops the session with one line naming the variable and the fix.
"""

from __future__ import annotations

import os

import pytest

PROFILES = ("full", "quick")
PROFILE = os.environ.get("HARNESS_BENCH_PROFILE", "full")
if PROFILE not in PROFILES:
    raise pytest.UsageError(
        f"HARNESS_BENCH_PROFILE must be one of {', '.join(PROFILES)}, not {PROFILE!r}"
    )


def _given(name: str) -> str | None:
    return os.environ.get(f"HARNESS_BENCH_{name}") or None


def size(name: str, full: int, quick: int) -> int:
    """HARNESS_BENCH_`name` as a whole number of at least 1, else the profile's default."""
    text = _given(name)
    if text is None:
        return full if PROFILE == "full" else quick
    if not text.isdigit() or int(text) < 1:
        raise pytest.UsageError(f"HARNESS_BENCH_{name} must be a whole number >= 1, not {text!r}")
    return int(text)


def names(name: str, full: str, quick: str) -> list[str]:
    """HARNESS_BENCH_`name` as a comma-separated list, else the profile's default."""
    text = _given(name) or (full if PROFILE == "full" else quick)
    return [item for item in text.split(",") if item]


def counts(name: str, full: str, quick: str) -> list[int]:
    """HARNESS_BENCH_`name` as a comma-separated list of whole numbers >= 1 (e.g. `1,2,3`),
    else the profile's default."""
    items = names(name, full, quick)
    if not items or not all(item.isdigit() and int(item) >= 1 for item in items):
        raise pytest.UsageError(
            f"HARNESS_BENCH_{name} must be whole numbers >= 1 separated by commas (e.g. 1,2,3),"
            f" not {','.join(items)!r}"
        )
    return [int(item) for item in items]


def paired(name: str, full: str, quick: str, other: str, other_counts: list[int]) -> list[int]:
    """`counts(name, ...)`, which must have as many items as HARNESS_BENCH_`other` (two lists
    read side by side, one size per position)."""
    items = counts(name, full, quick)
    if len(items) != len(other_counts):
        raise pytest.UsageError(
            f"HARNESS_BENCH_{name} must name as many sizes as HARNESS_BENCH_{other}"
            f" ({len(other_counts)}), not {len(items)}"
        )
    return items


# bench/test_programming_cost.py: sizes read side by side (endpoints[i] in services[i] Services)
PROGCOST_ENDPOINTS = counts("PROGCOST_ENDPOINTS", full="10,100,1000,10000", quick="10,100")
PROGCOST_SERVICES = paired(
    "PROGCOST_SERVICES", "10,50,500,5000", "10,50", "PROGCOST_ENDPOINTS", PROGCOST_ENDPOINTS
)
PROGCOST_ROUNDS = size("PROGCOST_ROUNDS", full=5, quick=2)
"""Endpoint changes per size (alternately one way and back), and bare replays of them."""
PROGCOST_FULL_ROUNDS = size("PROGCOST_FULL_ROUNDS", full=3, quick=1)
"""Proxy restarts per size (full syncs), and bare applications of the full ruleset."""
PROGCOST_CONNECTIONS = size("PROGCOST_CONNECTIONS", full=21, quick=7)
"""Fresh connections per size whose connect time is the first-packet latency."""
_KERNEL_PROXIES = ",".join(
    name
    for name in names("PROXIES", full="iptables,nftables", quick="iptables,nftables")
    if name in ("iptables", "nftables")
)
PROGCOST_PROXIES = names("PROGCOST_PROXIES", full=_KERNEL_PROXIES, quick=_KERNEL_PROXIES)
"""The kernel-rule proxies among HARNESS_BENCH_PROXIES (`harness bench --target`), unless
HARNESS_BENCH_PROGCOST_PROXIES names them."""
PROGCOST_NFT = names("PROGCOST_NFT", full="", quick="")
"""Directories each holding another `nft` (e.g. Debian 13's, from bench/debian_nft.py): the
nftables proxy is measured once more with each of them first on PATH, in the same run."""
