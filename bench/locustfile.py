"""Locust users that GET `/` from a Service; every worker tallies which pod answered and how
long each answer took.

The local cluster's pods answer `POD UID` (`harness.local.podserver`). A listener on locust's
`request` event (bench/worker_tally.py) counts each answer's latency into a microsecond
histogram (locust's own statistics round to whole milliseconds) and each good answer's pod; an
answer that names no pod is counted apart, as an error of the run. Every worker process writes
its tally into HARNESS_LOCUST_TALLY_DIR when its test stops (nothing is written when that is
unset); the harness merges them (bench/load_results.py), so the per-pod counts sum over the
workers. Requests keep the one name `/`: the task is as cheap as a bare one-task locustfile's
(bench/locustfile_bare.py), against which bench/test_throughput.py measures it.

Environment (read at import, so every worker process sees the same):
- HARNESS_LOCUST_CONNECTION: `keep-alive` (default: each user reuses one connection, so the
  backend is chosen once per connection by a kernel proxy) or `close` (`Connection: close`: the
  pod closes after each answer and the next request opens a fresh connection).
- HARNESS_LOCUST_USER: `fast` (default: FastHttpUser, geventhttpclient, ~6k req/s per process
  here) or `http` (HttpUser, python-requests, ~1-2k req/s per process here).
- HARNESS_LOCUST_TALLY_DIR: where each worker writes its tally (see above).
- HARNESS_LOCUST_PATH: the path asked (default `/`; the kube target's agnhost pods answer their
  name on `/hostname`, bench/kube_locust.py).

Users never wait between requests (closed loop: throughput is bounded by the generator's CPU, see
docs.locust.io "increase-performance"); the run's length is bounded by locust's `-t`.

Run (from inside a client namespace of the local cluster):
`ip netns exec NETNS locust -f bench/locustfile.py --headless -u 10 -r 10 -t 5s -H http://VIP`
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from locust import FastHttpUser, HttpUser, constant, events, task
from worker_tally import Tally  # locust puts the locustfile's folder on sys.path

CONNECTION = os.environ.get("HARNESS_LOCUST_CONNECTION", "keep-alive")
USER_KIND = os.environ.get("HARNESS_LOCUST_USER", "fast")
if CONNECTION not in ("keep-alive", "close"):
    raise SystemExit(f"HARNESS_LOCUST_CONNECTION must be keep-alive or close, not {CONNECTION!r}")
if USER_KIND not in ("fast", "http"):
    raise SystemExit(f"HARNESS_LOCUST_USER must be fast or http, not {USER_KIND!r}")
HEADERS = {"Connection": CONNECTION}
PATH = os.environ.get("HARNESS_LOCUST_PATH", "/")
if not PATH.startswith("/"):
    raise SystemExit(f"HARNESS_LOCUST_PATH must start with /, not {PATH!r}")
TALLY_DIR = os.environ.get("HARNESS_LOCUST_TALLY_DIR") or None
TALLY = Tally()


def observe(
    response_time: float | None = None,
    response: Any = None,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    """Tally one request: its response time (float ms; failures too, as wrk times every
    answer) and, for an answer locust took as good (200), the pod its body names. Reads the
    body's bytes, never `response.text` (which runs charset detection on every answer naming
    no charset: a fifth of the rate here). Must not raise: locust calls it for every request."""
    if response_time is not None:
        TALLY.add_latency_ms(response_time)
    if exception is None and response is not None and response.status_code == 200:
        TALLY.add_answer(response.content or b"")


def write_tally(**_: Any) -> None:
    """Write this process's tally (a worker stops, then quits: the later write replaces the
    earlier one, with any request that finished in between)."""
    if TALLY_DIR is not None:
        TALLY.write(Path(TALLY_DIR))


events.request.add_listener(observe)
events.test_stop.add_listener(write_tally)
events.quitting.add_listener(write_tally)


class IdentityFastUser(FastHttpUser):
    """FastHttpUser asking `/` without pause (selected by HARNESS_LOCUST_USER=fast)."""

    abstract = USER_KIND != "fast"
    wait_time = constant(0)
    network_timeout = 5.0
    connection_timeout = 5.0

    @task
    def identity(self) -> None:
        self.client.get(PATH, headers=HEADERS, name="/")


class IdentityHttpUser(HttpUser):
    """HttpUser (python-requests) asking `/` without pause (HARNESS_LOCUST_USER=http)."""

    abstract = USER_KIND != "http"
    wait_time = constant(0)

    @task
    def identity(self) -> None:
        self.client.get(PATH, headers=HEADERS, timeout=5.0, name="/")
