"""The tracers on hand-written dumps (no kernel needed): exact probabilities, jumps, gotos,
returns, REJECT, DNAT between hooks, affinity lists, and refusal to guess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.proxies.rules.iptables_save import parse_iptables_save, tokenize
from harness.proxies.rules.iptables_trace import IptablesRuleset
from harness.proxies.rules.nft_ruleset import parse_nft_json
from harness.proxies.rules.nft_trace import NftRuleset
from harness.proxies.rules.tracing import (
    DROP,
    REJECT,
    Kind,
    Packet,
    UntraceableRules,
    Verdict,
    statistic_probability,
)

DATA = Path(__file__).parent / "data"
PACKET = Packet("10.250.0.2", "10.96.0.10", "tcp", 80)

SAVED = (DATA / "iptables.save").read_text()


def dnat(address: str) -> Verdict:
    return Verdict(Kind.DNAT, address, 8080)


def test_statistic_probability_is_the_kernels_integer() -> None:
    assert statistic_probability("0.33333333349") == 715827883 / 2**31
    assert statistic_probability("0.50000000000") == 0.5


def test_iptables_probability_chain() -> None:
    outcomes = IptablesRuleset(parse_iptables_save(SAVED), "test").trace(PACKET)
    third = 715827883 / 2**31
    assert outcomes == {
        dnat("10.244.0.2"): third,
        dnat("10.244.0.3"): (1 - third) * 0.5,
        dnat("10.244.0.4"): (1 - third) * 0.5,
    }


def test_iptables_affinity_list_pins_the_client() -> None:
    rules = IptablesRuleset(parse_iptables_save(SAVED), "test")
    remembered = rules.remembering("10.244.0.2", 8080)
    assert remembered == {"KUBE-SEP-1"}
    sticky = Packet(PACKET.source, PACKET.destination, "tcp", 80, remembered=remembered)
    assert rules.trace(sticky) == {dnat("10.244.0.2"): 1.0}
    assert rules.remembering("10.244.0.3", 8080) == frozenset()


def test_iptables_reject_and_untouched() -> None:
    rules = IptablesRuleset(parse_iptables_save(SAVED), "test")
    assert rules.trace(Packet("10.250.0.2", "10.96.0.11", "tcp", 80)) == {REJECT: 1.0}
    accepted = rules.trace(Packet("10.250.0.2", "10.96.0.12", "tcp", 80))
    assert list(accepted) == [Verdict(Kind.ACCEPT)]


def test_iptables_refuses_to_guess() -> None:
    rule = "-A PREROUTING -m addrtype --src-type LOCAL -j DROP"  # --dst-type LOCAL is traced
    dump = f"*nat\n:PREROUTING ACCEPT [0:0]\n{rule}\nCOMMIT\n"
    with pytest.raises(UntraceableRules, match="addrtype"):
        IptablesRuleset(parse_iptables_save(dump), "test").trace(PACKET)
    interface = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -i eth0 -j DROP\nCOMMIT\n"
    with pytest.raises(UntraceableRules, match="interfaces"):
        IptablesRuleset(parse_iptables_save(interface), "test").trace(PACKET)


def nft_dump(*items: dict[str, object]) -> str:
    return json.dumps({"nftables": [{"metainfo": {"json_schema_version": 1}}, *items]})


def chain(name: str, **base: object) -> dict[str, object]:
    return {"chain": {"family": "ip", "table": "t", "name": name, **base}}


def rule(chain_name: str, *expr: object) -> dict[str, object]:
    return {"rule": {"family": "ip", "table": "t", "chain": chain_name, "expr": list(expr)}}


NFT = (DATA / "nft.json").read_text()  # a prerouting vmap, numgen mod 3, an affinity set, reject


def test_nft_numgen_shares() -> None:
    rules = NftRuleset(parse_nft_json(NFT), "test")
    assert rules.trace(PACKET) == {dnat("10.244.0.2"): 1 / 3, dnat("10.244.0.3"): 2 / 3}


def test_nft_affinity_set_is_run_time_state() -> None:
    rules = NftRuleset(parse_nft_json(NFT), "test")
    remembered = rules.remembering("10.244.0.2", 8080)
    assert remembered == {"aff-1"}
    sticky = Packet(PACKET.source, PACKET.destination, "tcp", 80, remembered=remembered)
    assert rules.trace(sticky) == {dnat("10.244.0.2"): 1.0}


def test_nft_reject_after_the_map_goto() -> None:
    rules = NftRuleset(parse_nft_json(NFT), "test")
    assert rules.trace(Packet("10.250.0.2", "10.96.0.11", "tcp", 80)) == {REJECT: 1.0}


def test_nft_drop_policy_and_xt_refusal() -> None:
    dropping = nft_dump(chain("f", hook="forward", type="filter", prio=0, policy="drop"))
    assert NftRuleset(parse_nft_json(dropping), "test").trace(PACKET) == {DROP: 1.0}
    compat = nft_dump(
        chain("PREROUTING", hook="prerouting", type="nat", prio=-100),
        rule("PREROUTING", {"xt": {"type": "match", "name": "comment"}}),
    )
    with pytest.raises(UntraceableRules, match="iptables-nft"):
        NftRuleset(parse_nft_json(compat), "test").trace(PACKET)


def test_iptables_save_quoting() -> None:
    line = r'-A X -m comment --comment "a \"b\" -> c" -m comment --comment "" -j Y'
    assert tokenize(line) == ["-A", "X", "-m", "comment", "--comment", 'a "b" -> c',
                              "-m", "comment", "--comment", "", "-j", "Y"]  # fmt: skip
