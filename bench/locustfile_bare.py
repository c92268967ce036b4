"""The bare calibration locustfile: one FastHttpUser with one task that GETs `/`, nothing else.

bench/test_throughput.py runs it beside bench/locustfile.py (same target, same worker count, same
users, in the same run) to show what the harness's locustfile costs: that one tallies every
answer's latency in microseconds and its pod (bench/worker_tally.py); this one does neither, so
its run has no latencies (locust's own are whole milliseconds, not reported) and no pod counts.
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task


class BareUser(FastHttpUser):
    """GET `/` without pause (closed loop), keep-alive."""

    wait_time = constant(0)

    @task
    def index(self) -> None:
        self.client.get("/")
