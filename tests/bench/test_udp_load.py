"""The UDP benchmark's generators (bench/udp_load.py) against a pod-like answerer in a scratch
namespace: bounded by count, answers counted per pod, lost requests counted, the fixed flow's
answers timestamped by pod. Nothing here depends on the machine's speed: every run ends by its
count long before its time bound."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from udp_load import FixedFlow, request_response

from harness.local.names import netns_path
from harness.local.netns import scratch_namespace
from harness.local.udp import MAX_DATAGRAM_BYTES, PROBE, datagram_socket

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace"),
]
PORT = 8080


class Answerer:
    """A pod-like UDP answerer on 127.0.0.1:PORT inside `netns`: `POD UID ADDRESS` to every
    probe, but, with `drop_every`, no answer to every that-many-th one."""

    def __init__(self, netns: str, drop_every: int = 0) -> None:
        self.sock = datagram_socket("127.0.0.1", PORT, netns_path(netns))
        self.sock.setblocking(True)
        self.sock.settimeout(0.05)
        self.drop_every, self.seen = drop_every, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.answer, daemon=True)

    def answer(self) -> None:
        while not self.stop.is_set():
            try:
                data, sender = self.sock.recvfrom(MAX_DATAGRAM_BYTES)
            except TimeoutError:
                continue
            self.seen += 1
            if data == PROBE and not (self.drop_every and self.seen % self.drop_every == 0):
                self.sock.sendto(f"pod-a u1 {sender[0]}".encode(), sender)

    def __enter__(self) -> Answerer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    with scratch_namespace() as name:
        yield name


def test_a_run_ends_at_its_count_with_every_answer_counted_by_pod(netns: str) -> None:
    with Answerer(netns):
        result = request_response(netns, "127.0.0.1", PORT, flows=3, seconds=60.0,
                                  max_requests=300, timeout_s=5.0)  # fmt: skip
    assert (result.requests, result.errors, dict(result.backends)) == (300, 0, {"pod-a": 300})
    p50, p99 = result.latency_us[50], result.latency_us[99]
    assert p50 is not None and p99 is not None and 0 < p50 <= p99
    assert result.requests_per_s > 0


def test_an_unanswered_request_is_counted_lost_and_the_flow_asks_again(netns: str) -> None:
    with Answerer(netns, drop_every=10):  # a timeout far past any answer's delay here
        result = request_response(netns, "127.0.0.1", PORT, flows=1, seconds=60.0,
                                  max_requests=20, timeout_s=1.0)  # fmt: skip
    assert result.errors == 2 and result.requests == 18


def test_the_fixed_flow_timestamps_each_answer_by_pod_from_its_fixed_port(netns: str) -> None:
    with Answerer(netns), FixedFlow(netns, "127.0.0.1", PORT, interval_s=0.005,
                                    max_seconds=30.0) as flow:  # fmt: skip
        first = flow.wait_for_other(0, "", 30.0)
        assert first is not None and first.pod == "pod-a" and flow.last_pod() == "pod-a"
        assert flow.wait_for_other(0, "pod-a", 0.05) is None  # no other pod answers
    assert flow.problem is None
    assert FixedFlow.SOURCE_PORT == 12345


def test_generators_refuse_the_root_namespace_and_unbounded_runs() -> None:
    with pytest.raises(ValueError, match="never from the root one"):
        request_response("", "127.0.0.1", PORT, flows=1, seconds=1.0, max_requests=1,
                         timeout_s=1.0)  # fmt: skip
    with pytest.raises(ValueError, match="must be positive"):
        request_response("x", "127.0.0.1", PORT, flows=1, seconds=0.0, max_requests=1,
                         timeout_s=1.0)  # fmt: skip
