"""The bare calibration locustfile: one FastHttpUser with one task that GETs `/`, nothing else.

bench/test_throughput.py runs it beside bench/locustfile.py (same target, same worker count, same
users, in the same run) to show what the harness's locustfile costs: it reads every answer's pod
identity and counts a microsecond latency histogram; this one does neither, so its latencies are
locust's own whole milliseconds and are not reported.
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task


class BareUser(FastHttpUser):
    """GET `/` without pause (closed loop), keep-alive."""

    wait_time = constant(0)

    @task
    def index(self) -> None:
        self.client.get("/")
