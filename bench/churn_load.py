"""A bounded steady load for the churn benchmark: fresh connections, one at a time, at a steady
rate, from inside a client namespace (never the root namespace), on a thread of its own.

It sends through a `harness.local.traffic.ClientAgent` of its own (a thread that entered the
client's namespace), one request per batch, so every request has its own start and end time.
The loop is bounded three ways and stops by itself: at most `max_requests` requests, no request
started after `max_seconds`, and `stop()`. Each request is bounded by `timeout_s`; the agent's
own margin bounds a request that hangs past it. It never bursts to catch up: a request that ran
late delays the next one. It records requests only (`harness.reporting.churn.Request`); judging
them is `harness.reporting.churn`'s.
"""

from __future__ import annotations

import threading
import time

from harness.local.traffic import Batch, ClientAgent
from harness.reporting.churn import Request


class SteadyLoad:
    """Fresh connections to `address:port` from client namespace `netns` (see the module
    docstring); a context manager that starts the load on entry and stops and joins it on
    exit."""

    def __init__(
        self,
        netns: str,
        address: str,
        port: int,
        *,
        rate_per_s: float,
        max_seconds: float,
        timeout_s: float,
    ) -> None:
        if not netns:
            raise ValueError("the churn load runs inside a client namespace, never the root one")
        if rate_per_s <= 0 or max_seconds <= 0 or timeout_s <= 0:
            raise ValueError("rate, duration and timeout must be positive")
        self.netns, self.address, self.port = netns, address, port
        self.interval_s = 1.0 / rate_per_s
        self.max_seconds = max_seconds
        self.max_requests = int(rate_per_s * max_seconds) + 1
        self.timeout_s = timeout_s
        self.requests: list[Request] = []
        self.began_s = 0.0
        self._stop = threading.Event()
        self._agent = ClientAgent(netns, timer=time.monotonic)
        self._thread = threading.Thread(target=self._run, name=f"churn load {netns}", daemon=True)
        self.problem: BaseException | None = None

    def __enter__(self) -> SteadyLoad:
        self._agent.start()
        self.began_s = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sending (a request under way ends within its timeout), join, close the agent.
        Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout_s + 10)
        self._agent.close()

    def _run(self) -> None:
        batch = Batch(self.address, self.port, 1, timeout_s=self.timeout_s)
        due = self.began_s
        try:
            while len(self.requests) < self.max_requests and not self._stop.is_set():
                now = time.monotonic()
                if now - self.began_s >= self.max_seconds:
                    break
                if due > now and self._stop.wait(due - now):
                    break
                started = time.monotonic()
                outcome = self._agent.run(batch)[0]
                ended = time.monotonic()
                backend = outcome.backend
                self.requests.append(
                    Request(started, ended, backend.pod if backend else None,
                            backend.uid if backend else None,
                            outcome.error.value if outcome.error else None)
                )  # fmt: skip
                due = max(due + self.interval_s, started)
        except Exception as error:  # reported by the benchmark (`problem`), not lost
            self.problem = error
