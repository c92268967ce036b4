"""The `OutOfWindow` event and the `out-of-window` part of `long-lived-connections`, pure:
the event changes no state and names an existing pod; a held connection reset after it fails
the part, named in evidence and message, and matches kubernetes#74839; the same reset after
another event, or a connection kept, does not; on the model every held connection survives
it, and the step counts the coverage state."""

from __future__ import annotations

import pytest

from harness.checks.connections import OUT_OF_WINDOW, PROPERTY, HeldAnswer, check_long_lived
from harness.events import CreateService, InvalidEvent, OutOfWindow, RestartProxy, Scale
from harness.known_issues import match
from harness.local.outofwindow import ACK, PSH, checksum, parse_segment, segment
from harness.longlived import OUT_OF_WINDOW_FEATURE
from harness.model.objects import Backend, labels_of
from harness.model.state import ClusterState
from harness.runner import replay
from harness.targets.model import ModelTarget
from harness.traffic import ErrorKind, Outcome

WEB = labels_of({"app": "web"})
START = [CreateService("svc-a", WEB), Scale("web", 1)]
WEB_0 = Backend("web-0", "u1")


def answer(outcome: Outcome) -> HeldAnswer:
    return HeldAnswer("svc-a", "client-1", WEB_0, outcome, usable=True, opened_step=1)


RESET = answer(Outcome(None, ErrorKind.RESET, 0.3, 0))
KEPT = answer(Outcome(WEB_0, None, 0.4, 0))


def test_the_event_changes_nothing_and_needs_an_existing_pod() -> None:
    state = ClusterState()
    for event in START:
        state = event.apply(state)
    assert OutOfWindow("web-0").apply(state) == state
    with pytest.raises(InvalidEvent, match="out-of-window pod='nope'"):
        OutOfWindow("nope").apply(state)


def test_a_reset_after_the_segment_fails_the_named_part_and_matches_74839() -> None:
    verdict = check_long_lived([RESET], None, OUT_OF_WINDOW)
    assert not verdict.holds and verdict.evidence["part"] == OUT_OF_WINDOW
    assert verdict.message.startswith("after a backend sent an out-of-window segment")
    events = [*START, OutOfWindow("web-0")]
    (found,) = match(PROPERTY, events, [verdict.to_json()], {"proxy": "v1.13.4"})
    assert found.issue.id == "kubernetes#74839"
    assert match(PROPERTY, [*START, RestartProxy()], [verdict.to_json()]) == []
    plain = check_long_lived([RESET])
    assert "part" not in plain.evidence and match(PROPERTY, events, [plain.to_json()]) == []


def test_a_connection_kept_through_the_segment_holds() -> None:
    verdict = check_long_lived([KEPT], None, OUT_OF_WINDOW)
    assert verdict.holds and verdict.evidence["part"] == OUT_OF_WINDOW


def test_the_model_keeps_every_connection_and_counts_the_state() -> None:
    history = list(replay(ModelTarget(), [*START, OutOfWindow("web-0")]).history)
    last = history[-1]
    assert isinstance(last["verdicts"], int), last["verdicts"]  # a count: nothing failed
    assert last["long_lived"] and all(c["answered_by"] == c["backend"] for c in last["long_lived"])
    assert OUT_OF_WINDOW_FEATURE in last["features"]


def test_the_segment_is_well_formed_and_reads_back() -> None:
    packet = segment("10.244.0.2", "10.250.1.2", 8080, 40000, 2**32 - 1, 7, PSH | ACK, b"boom")
    assert checksum(packet[:20]) == 0  # the IP header's checksum verifies
    pseudo = packet[12:20] + bytes([0, 6]) + (len(packet) - 20).to_bytes(2, "big")
    assert checksum(pseudo + packet[20:]) == 0  # so does the TCP checksum
    assert parse_segment(packet) == (
        "10.244.0.2",
        "10.250.1.2",
        8080,
        40000,
        2**32 - 1,
        7,
        PSH | ACK,
    )
    assert parse_segment(packet[:30]) is None and parse_segment(b"\x60" + packet[1:]) is None
