"""A run's liveness in its cluster: a `coordination.k8s.io/v1` Lease, renewed while the run lives.

The kube target creates the Lease `svc-lb-harness-run` in its namespace when it opens, renews it
from a daemon thread every `RENEW_EVERY_S` (spec.renewTime), and deletes it when it closes, as
kubelets and leader election show liveness in Kubernetes itself. `harness clean --kube`, on any
machine, keeps a namespace whose Lease is fresh (`lease_age`): renewTime + leaseDurationSeconds
is still ahead of the API server's clock.

Time: both sides use the API server's clock, read from the `Date` header of its answers (Go's
net/http sends it on every response; one-second resolution). The renewer writes renewTime as its
local time plus the offset it measured on its previous answer, so neither machine's clock needs to
be right; `CLOCK_ALLOWANCE_S` covers the header's resolution and one request's latency. A server
that sends no `Date` leaves both sides on local time, with `SKEW_ALLOWANCE_S` for the two machines'
clocks (NTP keeps them well within it).

The renewal thread never stops the run: a failed renewal is recorded (`problem()`) and retried on
the next tick, and the target reports it when it closes.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from kubernetes import client

from harness.errors import HarnessError
from harness.kube.api import MERGE_PATCH, Cluster
from harness.kube.objects import managed_labels

LEASE_NAME = "svc-lb-harness-run"
LEASE_DURATION_S = 30  # a run that has not renewed for this long is dead to `harness clean`
RENEW_EVERY_S = 5.0  # six tries per lease duration
CLOCK_ALLOWANCE_S = 2.0  # Date's one-second resolution plus a request's latency
SKEW_ALLOWANCE_S = 60.0  # no Date header: local clocks of two machines
DATE_RESOLUTION = timedelta(seconds=1)  # the Date header counts whole seconds
STOP_WAIT_S = 1.0  # close() waits no longer for the thread (an API call is bounded anyway)

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    """The local wall clock, in UTC (the default of every `wall` parameter here)."""
    return datetime.now(UTC)


def server_time(headers: Mapping[str, str] | None) -> datetime | None:
    """The API server's clock from an answer's `Date` header; None without a readable one."""
    text = (headers or {}).get("Date") or (headers or {}).get("date")
    if not text:
        return None
    try:
        return parsedate_to_datetime(text).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def holder_identity(prefix: str) -> str:
    """Who renews the Lease: `host/pid/prefix`, so that a kept namespace names its run."""
    return f"{socket.gethostname()}/{os.getpid()}/{prefix}"


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC). Pure."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_manifest(namespace: str, prefix: str, renew: datetime) -> dict[str, Any]:
    """The run's Lease as the target creates it. Pure."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": LEASE_NAME, "namespace": namespace, "labels": managed_labels(prefix)},
        "spec": {
            "holderIdentity": holder_identity(prefix),
            "leaseDurationSeconds": LEASE_DURATION_S,
            "renewTime": micro_time(renew),
        },
    }


@dataclass(frozen=True)
class Liveness:
    """What `harness clean --kube` reads from one namespace's Lease."""

    alive: bool
    age_s: float | None  # seconds since the last renewal; None: no Lease (or none readable)
    holder: str

    def describe(self) -> str:
        """`its run is alive (lease renewed 3 s ago by host/123/hk1a2b3)`, for the clean output."""
        age = f"{max(self.age_s or 0.0, 0.0):.0f} s ago"
        by = f" by {self.holder}" if self.holder else ""
        return f"its run is alive (lease renewed {age}{by})"


def lease_age(lease: Any, now: datetime, allowance_s: float) -> Liveness:
    """Whether a Lease read at server time `now` is still held: renewTime + leaseDurationSeconds
    + `allowance_s` is after `now`. A Lease without renewTime or duration is not live. Pure."""
    spec = getattr(lease, "spec", None)
    renew = getattr(spec, "renew_time", None)
    duration = getattr(spec, "lease_duration_seconds", None)
    holder = str(getattr(spec, "holder_identity", None) or "")
    if not isinstance(renew, datetime) or not isinstance(duration, int):
        return Liveness(False, None, holder)
    if renew.tzinfo is None:
        renew = renew.replace(tzinfo=UTC)
    age_s = (now - renew).total_seconds()
    return Liveness(age_s < duration + allowance_s, age_s, holder)


def read_liveness(cluster: Cluster, namespace: str, wall: WallClock = utc_now) -> Liveness:
    """The Lease of the run owning `namespace`, judged on the server's clock (`server_time`), or
    on `wall` with `SKEW_ALLOWANCE_S` when the server sends no Date. No Lease: not alive (a run
    from before leases, or a dead one). Reads only; errors are one-line HarnessErrors."""
    answer = cluster.call(
        f"get leases in namespace {namespace}",
        client.CoordinationV1Api(cluster.api_client).read_namespaced_lease_with_http_info,
        LEASE_NAME,
        namespace,
        allow=(404,),
    )
    if answer is None:
        return Liveness(False, None, "")
    lease, _, headers = answer
    now = server_time(headers)
    if now is None:
        return lease_age(lease, wall(), SKEW_ALLOWANCE_S)
    return lease_age(lease, now, CLOCK_ALLOWANCE_S)


class Heartbeat:
    """The run's Lease and the daemon thread that renews it.

    `start()` creates the Lease synchronously (a missing permission is an error of `open()`,
    one line) and starts the thread; `stop()` ends the thread (waiting at most `STOP_WAIT_S`) and
    deletes the Lease, and never raises for a renewal problem: `problem()` reports those.
    """

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        prefix: str,
        renew_every_s: float = RENEW_EVERY_S,
        wall: WallClock = utc_now,
    ) -> None:
        self._cluster = cluster
        self._api = client.CoordinationV1Api(cluster.api_client)
        self._namespace = namespace
        self._prefix = prefix
        self._every_s = renew_every_s
        self._wall = wall
        self._offset: timedelta | None = None  # server clock minus local clock (`_record`)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failures = 0
        self._first_problem: str | None = None
        self.renewals = 0

    def start(self) -> None:
        self._create()
        self._thread = threading.Thread(target=self._run, name=f"lease-{self._prefix}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End renewals and delete the Lease (404 is fine). Raises only the delete's one-line
        error; idempotent."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_S)
            self._thread = None
            self._cluster.call(
                f"delete leases in namespace {self._namespace}",
                self._api.delete_namespaced_lease,
                LEASE_NAME,
                self._namespace,
                allow=(404,),
            )

    def problem(self) -> str | None:
        """One line if any renewal failed, naming how often and the first cause; else None."""
        with self._lock:
            if not self._failures:
                return None
            return (
                f"the run's lease ({LEASE_NAME} in namespace {self._namespace}) failed to renew"
                f" {self._failures} time(s), first: {self._first_problem}; a run that renews"
                f" nothing for {LEASE_DURATION_S} s looks dead to `harness clean --kube`"
            )

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopped.wait(self._every_s):
            try:
                self._renew()
            except Exception as error:  # recorded, never raised: the run goes on
                with self._lock:
                    self._failures += 1
                    if self._first_problem is None:
                        text = str(error) if isinstance(error, HarnessError) else repr(error)
                        self._first_problem = " ".join(text.split())[:300]

    def _renew(self) -> None:
        """A merge patch of spec.renewTime (only this run writes its Lease, so no
        resourceVersion is needed); a Lease someone deleted is created again."""
        body = {"spec": {"renewTime": micro_time(self._server_now())}}
        answer = self._cluster.call(
            f"patch leases in namespace {self._namespace}",
            self._api.patch_namespaced_lease_with_http_info,
            LEASE_NAME,
            self._namespace,
            body,
            _content_type=MERGE_PATCH,
            allow=(404,),
        )
        if answer is not None:
            self._record(answer)
        elif not self._stopped.is_set():  # not the Lease stop() just deleted
            self._create()
        with self._lock:
            self.renewals += 1

    def _create(self) -> None:
        self._record(
            self._cluster.call(
                f"create leases in namespace {self._namespace}",
                self._api.create_namespaced_lease_with_http_info,
                self._namespace,
                lease_manifest(self._namespace, self._prefix, self._server_now()),
            )
        )

    def _server_now(self) -> datetime:
        """The server's clock as last measured; local time until an answer carried a Date."""
        return self._wall() + (self._offset or timedelta(0))

    def _record(self, answer: Any) -> None:
        """Measure the server's clock offset from the answer's Date header (the middle of its
        one-second window). A new measurement replaces the held one only when they differ by more
        than `DATE_RESOLUTION`, so the header's jitter never moves renewTime backwards; a real
        clock step still does."""
        now = server_time(answer[2] if answer is not None else None)
        if now is None:
            return
        offset = now + DATE_RESOLUTION / 2 - self._wall()
        if self._offset is None or abs(offset - self._offset) > DATE_RESOLUTION:
            self._offset = offset
