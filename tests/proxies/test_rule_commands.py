"""The rule commands' time bound grows with the transaction (harness.proxies.rules.commands)."""

from __future__ import annotations

from harness.proxies.rules.commands import COMMAND_TIMEOUT_S, transaction_timeout_s


def test_a_full_sync_of_ten_thousand_endpoints_gets_more_than_the_fixed_bound() -> None:
    # the nftables proxy's full sync at 10,000 endpoints is 45,000 lines; its kernel commit took
    # over 30 s beside other test runs, so a fixed 30 s bound failed the sync
    full_sync = "add rule ip t c accept\n" * 45_000
    assert transaction_timeout_s(full_sync) >= 2 * COMMAND_TIMEOUT_S


def test_a_small_transaction_keeps_the_fixed_bound() -> None:
    assert transaction_timeout_s("add element ip t m { 1 }\n") < COMMAND_TIMEOUT_S + 1
