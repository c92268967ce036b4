"""Out-of-window segments on real packets (issue 12 item 5; kubernetes#74839, e2e "should drop
INVALID conntrack entries"): a backend pod sends a segment far outside the window on each of its
established connections (`OutOfWindow`, `harness.local.outofwindow`); the harness's iptables and
nftables proxies drop it (conntrack marks it INVALID) and every held connection keeps working on
its backend; the disclosed mutant without the drop is caught at that step, under the named part
`out-of-window` of `long-lived-connections`, and its counterexample shrinks to the three events
that matter and replays. A proxy that relays connections is never asked: it terminates TCP, so
the case does not arise, and the target says so."""

from __future__ import annotations

from typing import Any

import pytest

from harness import registry
from harness.checks.connections import OUT_OF_WINDOW, PROPERTY
from harness.errors import UsageError
from harness.events import CreatePod, CreateService, Event, OutOfWindow, Scale
from harness.longlived import MAX_HELD, OUT_OF_WINDOW_FEATURE
from harness.model.objects import labels_of
from harness.runner import RunConfig, replay
from harness.shrink import shrink_events
from harness.targets.base import Target, out_of_window_unsupported
from harness.targets.local import LocalTarget
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
SEQUENCE: list[Event] = [
    CreateService("svc-a", WEB),
    Scale("web", 1),  # every held connection opens to web-0
    CreatePod("p-0", labels_of({"app": "api"})),  # unrelated: no Service selects it
    OutOfWindow("web-0"),
]
SENT_STEP = 3
CONFIG = RunConfig(deadline_s=LocalTarget.default_deadline_s)
MUTANT = "local:mutant-iptables-keeps-invalid"


def failures(record: dict[str, Any]) -> list[dict[str, Any]]:
    verdicts = record["verdicts"]
    return [] if isinstance(verdicts, int) else list(verdicts)


def opened(spec: str, prefix: str) -> Target:
    target = registry.make_target(spec, registry.TargetOptions(prefix=prefix))
    target.open()
    return target


@pytest.mark.parametrize("proxy", ["iptables", "nftables"])
def test_kernel_proxies_drop_the_segment_and_keep_every_connection(proxy: str, prefix: str) -> None:
    target = opened(f"local:{proxy}", prefix)
    try:
        history = list(replay(target, SEQUENCE, CONFIG).history)
        sent = list(target.out_of_window_sent)  # type: ignore[attr-defined]
    finally:
        target.close()
    assert [failures(record) for record in history] == [[]] * len(SEQUENCE)
    assert len(sent) == MAX_HELD  # one segment on each held connection, all to web-0
    kept = history[SENT_STEP]["long_lived"]
    assert len(kept) == MAX_HELD and all(c["answered_by"] == c["backend"] for c in kept), kept
    assert OUT_OF_WINDOW_FEATURE in history[SENT_STEP]["features"]


def test_a_proxy_that_keeps_invalid_packets_is_caught_shrunk_and_replayed(prefix: str) -> None:
    target = opened(MUTANT, prefix)

    def fails(events: list[Event]) -> int | None:
        history = replay(target, events, CONFIG).history
        for index, record in enumerate(history):
            if any(v["property"] == PROPERTY for v in failures(record)):
                return index + 1
        return None

    try:
        history = list(replay(target, SEQUENCE, CONFIG).history)
        shrunk = shrink_events(SEQUENCE, fails)
        again = fails(shrunk)
    finally:
        target.close()
    assert all(not failures(record) for record in history[:SENT_STEP])
    (found,) = [v for v in failures(history[SENT_STEP]) if v["property"] == PROPERTY]
    assert found["evidence"]["part"] == OUT_OF_WINDOW
    assert "out-of-window segment" in found["message"] and "reset" in found["message"]
    assert shrunk == [SEQUENCE[0], SEQUENCE[1], SEQUENCE[3]]
    assert again == len(shrunk)


def test_a_relaying_proxy_is_not_asked_and_says_why(userspace_target: LocalTarget) -> None:
    why = out_of_window_unsupported(userspace_target)
    assert why is not None and "terminates TCP" in why
    with pytest.raises(UsageError, match="out-of-window: the proxy relays"):
        userspace_target.apply(OutOfWindow("web-0"))
