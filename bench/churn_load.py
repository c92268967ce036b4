"""A bounded steady load for the churn benchmark: fresh connections at a steady rate, from
inside a client namespace (never the root namespace), on threads of their own.

`workers` senders share the rate, each through a `harness.local.traffic.ClientAgent` of its own
(a thread that entered the client's namespace) and one request per batch, so every request has
its own start and end time, and a request that waits for its timeout holds up one sender only:
during an outage the others go on failing at their rate, so the failures counted grow with its
length. Each sender is bounded three ways and stops by itself: at most its share of
`rate_per_s * max_seconds` requests, none started after `max_seconds`, and `stop()`. Each
request is bounded by `timeout_s`; the agent's own margin bounds one that hangs past it. A
sender never bursts to catch up: a request that ran late delays its next one. It records
requests only (`harness.reporting.churn.Request`); judging them is `harness.reporting.churn`'s.
"""

from __future__ import annotations

import threading
import time

from harness.local.traffic import Batch, ClientAgent
from harness.reporting.churn import Request


class SteadyLoad:
    """Fresh connections to `address:port` from client namespace `netns` (see the module
    docstring); a context manager that starts the load on entry and stops and joins it on
    exit. `requests` is complete once it has stopped; `problem` is the first error a sender
    stopped on (None when none did)."""

    def __init__(
        self,
        netns: str,
        address: str,
        port: int,
        *,
        rate_per_s: float,
        max_seconds: float,
        timeout_s: float,
        workers: int = 1,
    ) -> None:
        if not netns:
            raise ValueError("the churn load runs inside a client namespace, never the root one")
        if rate_per_s <= 0 or max_seconds <= 0 or timeout_s <= 0 or workers < 1:
            raise ValueError("rate, duration, timeout and workers must be positive")
        self.batch = Batch(address, port, 1, timeout_s=timeout_s)
        self.interval_s = workers / rate_per_s  # each sender's
        self.max_seconds = max_seconds
        self.max_each = int(rate_per_s * max_seconds / workers) + 1
        self.requests: list[Request] = []
        self.began_s = 0.0
        self.problem: BaseException | None = None
        self._stop = threading.Event()
        self._agents = [ClientAgent(netns, timer=time.monotonic) for _ in range(workers)]
        self._threads = [
            threading.Thread(target=self._send, args=(agent, number), daemon=True,
                             name=f"churn load {netns} {number}")
            for number, agent in enumerate(self._agents)
        ]  # fmt: skip

    def __enter__(self) -> SteadyLoad:
        try:
            for agent in self._agents:
                agent.start()
        except BaseException:
            self.stop()
            raise
        self.began_s = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sending (a request under way ends within its timeout), join the senders, close
        the agents. Idempotent."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(self.batch.timeout_s + 10)
        for agent in self._agents:
            agent.close()

    def _send(self, agent: ClientAgent, number: int) -> None:
        """One sender: its share of the rate, offset from the others by one request's slot."""
        due = self.began_s + number * self.interval_s / len(self._agents)
        sent = 0
        try:
            while sent < self.max_each and not self._stop.is_set():
                now = time.monotonic()
                if now - self.began_s >= self.max_seconds:
                    break
                if due > now and self._stop.wait(due - now):
                    break
                started = time.monotonic()
                outcome = agent.run(self.batch)[0]
                backend, error = outcome.backend, outcome.error
                self.requests.append(
                    Request(started, time.monotonic(), backend.pod if backend else None,
                            backend.uid if backend else None, error.value if error else None)
                )  # fmt: skip
                sent += 1
                due = max(due + self.interval_s, started)
        except Exception as error:  # reported by the benchmark (`problem`), not lost
            self.problem = self.problem or error
