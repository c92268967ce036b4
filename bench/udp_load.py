"""The UDP benchmark's generators: a bounded request/response loop and a fixed-5-tuple flow, both
sending from inside a client namespace (never the root namespace).

Why not wrk or locust: both speak HTTP over TCP only. Why one thread and epoll rather than
asyncio: a request is one datagram and its answer, so the generator's own cost per request is
the whole figure at these rates; a `selectors` loop over connected non-blocking sockets does one
`select`, one `recv` and one `send` per answer, about half of what an asyncio datagram endpoint
costs per datagram here. The pod server answering is another process, so the loop and the
server do not share an interpreter.

- `request_response`: `flows` UDP flows (each its own socket, its own 5-tuple, so each one
  conntrack entry: the UDP analogue of a kept-alive connection) with one request in flight
  each; every answer starts that flow's next request at once (a closed loop). A request
  unanswered after `timeout_s` is counted lost and the flow asks again (an answer that still
  comes later is taken for the new request's: the pod's answers carry no request number; with
  timeouts far above the latencies measured here, that is rare and shows as lost requests).
  Bounded in time (`seconds`) and in count (`max_requests` sent): whichever comes first ends
  the run.
- `FixedFlow`: one flow from a fixed source port (upstream's conntrack e2e sends from
  `-p 12345`, `test/e2e/network/conntrack.go`), one datagram every `interval_s`, each answer
  timestamped with the pod that gave it; on a thread of its own, bounded in time and count,
  stopped by `stop()` or by leaving the `with` block.

Each records figures only; the benchmark (bench/test_udp.py) decides what they mean.
"""

from __future__ import annotations

import contextlib
import selectors
import threading
import time
from collections import Counter
from dataclasses import dataclass

from load_results import PERCENTILES, LoadResult

from harness.local.udp import MAX_DATAGRAM_BYTES, PROBE, flow_socket_in, held_port

TOOL = "harness-udp-rr"
"""The generator's name in the figures (`Generator.tool`)."""


def percentile(values: list[float], percent: float) -> float | None:
    """The nearest-rank `percent`-th percentile of `values` (None when empty): with fewer than
    100 values the 99th is the largest."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * percent // 100))  # ceil without floats
    return ordered[int(rank) - 1]


def _pod(answer: bytes) -> str:
    """The pod an answer `POD UID ADDRESS` names (its first word)."""
    return answer.partition(b" ")[0].decode("ascii", "replace")


def request_response(
    netns: str,
    address: str,
    port: int,
    *,
    flows: int,
    seconds: float,
    max_requests: int,
    timeout_s: float,
) -> LoadResult:
    """One bounded closed-loop run to `address:port` from namespace `netns` (module
    docstring). `requests` counts answers, `errors` lost requests and ICMP errors; latency
    percentiles in microseconds; `backends` the answers per pod."""
    if flows < 1 or seconds <= 0 or max_requests < flows or timeout_s <= 0:
        raise ValueError("flows, seconds, max_requests (>= flows) and timeout_s must be positive")
    socks = [flow_socket_in(netns, 0, address, port) for _ in range(flows)]
    selector = selectors.DefaultSelector()
    latencies_ns: list[int] = []
    backends: Counter[str] = Counter()
    errors = sent = 0
    asked_at: dict[int, int] = {}
    try:
        for number, sock in enumerate(socks):
            selector.register(sock, selectors.EVENT_READ, number)
        began = time.perf_counter_ns()
        deadline, timeout_ns = began + int(seconds * 1e9), int(timeout_s * 1e9)

        def send(number: int) -> None:
            nonlocal sent
            if sent < max_requests and time.perf_counter_ns() < deadline:
                socks[number].send(PROBE)
                asked_at[number] = time.perf_counter_ns()
                sent += 1
            else:
                asked_at.pop(number, None)

        for number in range(flows):
            send(number)
        while asked_at and time.perf_counter_ns() < deadline:
            for key, _ in selector.select(timeout=min(timeout_s, 0.05)):
                number = key.data
                try:
                    answer = socks[number].recv(MAX_DATAGRAM_BYTES)
                except BlockingIOError:
                    continue
                except OSError:  # an ICMP error for this flow
                    errors += 1
                    send(number)
                    continue
                if number in asked_at:
                    latencies_ns.append(time.perf_counter_ns() - asked_at[number])
                    backends[_pod(answer)] += 1
                    send(number)
            now = time.perf_counter_ns()
            for number in [n for n, at in asked_at.items() if now - at > timeout_ns]:
                errors += 1
                send(number)
        duration_s = (time.perf_counter_ns() - began) / 1e9
    finally:
        selector.close()
        for sock in socks:
            sock.close()
    latencies_us = [value / 1000 for value in latencies_ns]
    return LoadResult(
        tool=TOOL,
        requests=len(latencies_ns),
        errors=errors,
        duration_s=round(duration_s, 3),
        requests_per_s=round(len(latencies_ns) / duration_s, 1) if duration_s > 0 else 0.0,
        latency_us={p: percentile(latencies_us, p) for p in PERCENTILES},
        backends=dict(backends),
    )


@dataclass(frozen=True)
class Answer:
    """One datagram of a `FixedFlow` answered: when (monotonic seconds) and by which pod."""

    at_s: float
    pod: str


class FixedFlow:
    """One flow with a fixed 5-tuple from namespace `netns` to `address:port` (module
    docstring); a context manager that starts sending on entry and stops and joins on exit.
    `answers` grows as answers come (read it from any thread); `problem` is the error the
    sender stopped on, if any. Bounded: at most `max_seconds` and `max_seconds / interval_s + 1`
    datagrams."""

    SOURCE_PORT = held_port(0)

    def __init__(
        self,
        netns: str,
        address: str,
        port: int,
        *,
        interval_s: float,
        max_seconds: float,
        source_port: int = SOURCE_PORT,
    ) -> None:
        if interval_s <= 0 or max_seconds <= 0:
            raise ValueError("interval and duration must be positive")
        self.interval_s, self.max_seconds = interval_s, max_seconds
        self.max_datagrams = int(max_seconds / interval_s) + 1
        self.answers: list[Answer] = []
        self.problem: BaseException | None = None
        self._sock = flow_socket_in(netns, source_port, address, port)
        self._sock.setblocking(True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True, name=f"udp flow {netns}")

    def __enter__(self) -> FixedFlow:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sending, join the sender (within one interval), close the socket. Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.interval_s + 5)
        self._sock.close()

    def last_pod(self) -> str | None:
        """The pod of the latest answer, None before the first."""
        return self.answers[-1].pod if self.answers else None

    def wait_for_other(self, start: int, pod: str, limit_s: float) -> Answer | None:
        """Wait, at most `limit_s`, for an answer from a pod other than `pod` among `answers`
        from index `start` on (`len(answers)` taken when the change began); it, or None when
        none came in time or the sender stopped. Reads only; polls once an interval."""
        ends = time.monotonic() + limit_s
        index = start
        while True:
            while index < len(self.answers):
                answer = self.answers[index]
                index += 1
                if answer.pod != pod:
                    return answer
            if time.monotonic() >= ends or not self._thread.is_alive():
                return None
            time.sleep(self.interval_s)

    def _send(self) -> None:
        """Send every `interval_s`, wait up to the next tick for the answer (a late answer to an
        earlier datagram counts at its arrival: it is still the pod the flow reached)."""
        began = time.monotonic()
        try:
            for number in range(self.max_datagrams):
                due = began + number * self.interval_s
                if self._stop.is_set() or due - began >= self.max_seconds:
                    break
                # an ICMP error for an earlier datagram is reported once, by this send
                with contextlib.suppress(OSError):
                    self._sock.send(PROBE)
                while (left := due + self.interval_s - time.monotonic()) > 0:
                    self._sock.settimeout(left)
                    try:
                        answer = self._sock.recv(MAX_DATAGRAM_BYTES)
                    except TimeoutError:
                        break
                    except OSError:  # ICMP unreachable while the backend is gone
                        continue
                    self.answers.append(Answer(time.monotonic(), _pod(answer)))
        except Exception as error:  # reported by the benchmark (`problem`), not lost
            self.problem = error
