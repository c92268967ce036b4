"""Clearing many flows lists the table once (harness.proxies.rules.conntrack): a `conntrack -L`
line is read as its flow (TCP and UDP, replied or not), and above LIST_ABOVE flows only those
the table holds get a `-D` line, so a first sync of thousands of Services walks the table once
instead of once per port (issue 13 item 5's benchmark found 5,000 walks past the 30 s bound)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.proxies.rules import conntrack
from harness.proxies.rules.conntrack import LIST_ABOVE, ConntrackCleaner, flow_of
from harness.proxies.rules.plan import Flow

TCP = (
    "tcp      6 431999 ESTABLISHED src=10.250.1.2 dst=10.96.0.10 sport=40000 dport=80"
    " src=10.244.0.10 dst=10.250.1.2 sport=8080 dport=40000 [ASSURED] mark=0 use=1"
)
UDP = (
    "udp      17 29 src=10.250.1.2 dst=10.96.0.11 sport=12345 dport=80 [UNREPLIED]"
    " src=10.96.0.11 dst=10.250.1.2 sport=80 dport=12345 mark=0 use=1"
)


def test_a_listing_line_is_its_flow() -> None:
    assert flow_of(TCP) == Flow("tcp", "10.96.0.10", 80, "10.244.0.10", 8080)
    assert flow_of(UDP) == Flow("udp", "10.96.0.11", 80, "10.96.0.11", 80)  # untranslated
    assert flow_of("conntrack v1.4.7 (conntrack-tools): 2 flow entries") is None
    assert flow_of("tcp 6 10 src=1.2.3.4") is None
    assert flow_of("") is None


@pytest.mark.parametrize("many", [False, True])
def test_above_the_threshold_only_held_flows_are_deleted(
    monkeypatch: pytest.MonkeyPatch, many: bool
) -> None:
    held = {flow_of(TCP), flow_of(UDP)}
    others = [Flow("tcp", "10.96.1.1", 80, f"10.244.0.{i}", 8080) for i in range(LIST_ABOVE)]
    wanted = [*held, *others] if many else [*held]
    ran: list[tuple[list[str], Any]] = []

    def run(netns: str, argv: list[str], **kwargs: Any) -> str:
        ran.append((argv, kwargs.get("stdin")))
        return f"{TCP}\n{UDP}\n" if argv == ["conntrack", "-L"] else ""

    monkeypatch.setattr(conntrack, "run_in_netns", run)
    cleaner = ConntrackCleaner("hk0test-node")
    monkeypatch.setattr(cleaner, "entries", lambda: 2)
    cleaner.clear(wanted)
    listed = [argv for argv, _ in ran if argv == ["conntrack", "-L"]]
    assert len(listed) == (1 if many else 0)
    (deleted,) = [stdin for argv, stdin in ran if argv == ["conntrack", "-R", "-"]]
    assert sorted(deleted.splitlines()) == sorted(conntrack.delete_command(f) for f in held)
