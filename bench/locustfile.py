"""Locust users that GET `/` from a Service and count which pod answered.

The local cluster's pods answer `POD UID` (`harness.local.podserver`). Every answer is reported to
locust under the name `backend:POD` instead of `/`: locust's own statistics (stats.csv, one row per
pod, plus the Aggregated row) are then the per-backend counts, with latencies, and locust merges
them across workers (`--master` with `--worker` processes) as it merges everything else. An
answer that is not a pod identity is a failure under `/`; a connection error stays locust's own
failure under `/`.

Latencies: locust rounds its own to whole milliseconds, so every worker also counts each
request's response time (the `request` event's float milliseconds) into a microsecond histogram
(bench/latency_histogram.py) and writes it, one file per worker process, into
HARNESS_LOCUST_LATENCY_DIR when its test stops (nothing is written when that is unset).

Environment (read at import, so every worker process sees the same):
- HARNESS_LOCUST_CONNECTION: `keep-alive` (default: each user reuses one connection, so the
  backend is chosen once per connection by a kernel proxy) or `close` (`Connection: close`: the
  pod closes after each answer and the next request opens a fresh connection).
- HARNESS_LOCUST_USER: `fast` (default: FastHttpUser, geventhttpclient, ~6k req/s per process
  here) or `http` (HttpUser, python-requests, ~1-2k req/s per process here).
- HARNESS_LOCUST_LATENCY_DIR: where each worker writes its latency histogram (see above).

Users never wait between requests (closed loop: throughput is bounded by the generator's CPU, see
docs.locust.io "increase-performance"); the run's length is bounded by locust's `-t`.

Run (from inside a client namespace of the local cluster):
`ip netns exec NETNS locust -f bench/locustfile.py --headless -u 10 -r 10 -t 5s -H http://VIP`
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from latency_histogram import Recorder  # locust puts the locustfile's folder on sys.path
from locust import FastHttpUser, HttpUser, constant, events, task
from pod_identity import BACKEND_PREFIX, pod_of

CONNECTION = os.environ.get("HARNESS_LOCUST_CONNECTION", "keep-alive")
USER_KIND = os.environ.get("HARNESS_LOCUST_USER", "fast")
if CONNECTION not in ("keep-alive", "close"):
    raise SystemExit(f"HARNESS_LOCUST_CONNECTION must be keep-alive or close, not {CONNECTION!r}")
if USER_KIND not in ("fast", "http"):
    raise SystemExit(f"HARNESS_LOCUST_USER must be fast or http, not {USER_KIND!r}")
HEADERS = {"Connection": CONNECTION}
LATENCY_DIR = os.environ.get("HARNESS_LOCUST_LATENCY_DIR") or None
LATENCIES = Recorder()


def count_latency(response_time: float | None = None, **_: Any) -> None:
    """Count every request's response time (float ms; failures too, as wrk counts every
    answer); must not raise, since locust calls it for every request."""
    if response_time is not None:
        LATENCIES.add_ms(response_time)


def write_latencies(**_: Any) -> None:
    """Write this process's histogram (a worker stops, then quits: the later write replaces
    the earlier one, with any request that finished in between)."""
    if LATENCY_DIR is not None:
        LATENCIES.write(Path(LATENCY_DIR))


events.request.add_listener(count_latency)
events.test_stop.add_listener(write_latencies)
events.quitting.add_listener(write_latencies)


def record(response: Any) -> None:
    """Rename a good answer to its backend (`backend:POD`); fail an answer that names none.

    `response` is either user class's catch_response context; both carry `request_meta`, whose
    `name` locust reads when the context exits. Answers other than 200 keep locust's verdict.
    """
    if response.status_code != 200:
        return
    text = response.text or ""
    pod = pod_of(text)
    if pod is None:
        response.failure(f"not a pod identity: {text[:40]!r}")
        return
    response.request_meta["name"] = BACKEND_PREFIX + pod


class IdentityFastUser(FastHttpUser):
    """FastHttpUser asking `/` without pause (selected by HARNESS_LOCUST_USER=fast)."""

    abstract = USER_KIND != "fast"
    wait_time = constant(0)
    network_timeout = 5.0
    connection_timeout = 5.0

    @task
    def identity(self) -> None:
        with self.client.get("/", name="/", headers=HEADERS, catch_response=True) as response:
            record(response)


class IdentityHttpUser(HttpUser):
    """HttpUser (python-requests) asking `/` without pause (HARNESS_LOCUST_USER=http)."""

    abstract = USER_KIND != "http"
    wait_time = constant(0)

    @task
    def identity(self) -> None:
        with self.client.get(
            "/", name="/", headers=HEADERS, catch_response=True, timeout=5.0
        ) as response:
            record(response)
