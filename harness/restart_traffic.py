"""Fresh connections while the proxy restarts (I16), for a proxy that keeps its rules across it.

kube-proxy exits without removing its rules and its next instance replaces them in one atomic
transaction (`harness.proxies.base.RuleKeepingProxy`), so a restart leaves no moment in which a
new connection to a Service with usable endpoints meets no rules; Cilium's connectivity test
("conn-disrupt") holds an agent restart to the same standard for the traffic it keeps running.
A proxy that removed its rules at the stop and started empty would leave a window: a SYN sent
in it creates an untranslated conntrack entry, goes to the node's Service-range sink, and its
retransmissions follow that entry until the client gives up (the churn benchmark measured
4 timed-out requests per restart that way).

`DuringRestart` runs around `target.apply(RestartProxy())` when the target's proxy declares
that it keeps its rules (`harness.targets.base.keeps_proxy_state`): one thread sends fresh
connections one at a time from CLIENTS[0] to one Service with usable endpoints (the first by
name), from before the restart begins until it has ended, bounded in count (`MAX_REQUESTS`) and
each request in time; the sample is judged by `availability` (no request fails while a usable
endpoint exists) and `no-stale-traffic`, with the evidence `part: during-restart`. A window
shorter than the gap between two requests can escape one restart, so this is a sampled check;
what the window destroys, the affinity memory, is judged deterministically (`harness.runner`).
It sends nothing for any other event or target, and changes nothing but the client's sockets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType

from harness.checks.traffic import check_availability, check_no_stale
from harness.checks.verdict import Verdict
from harness.events import Event, RestartProxy
from harness.model.endpoints import Expectation, expect
from harness.model.state import ClusterState
from harness.targets.base import Target, keeps_proxy_state
from harness.traffic import CLIENTS, Outcome, TrafficRequest, TrafficSample

MAX_REQUESTS = 400
"""At most this many requests per restart (a restart takes about 0.1 s; one request about 1 ms
when rules answer)."""
PART = "during-restart"


class DuringRestart:
    """Samples one Service while the target restarts its proxy (module docstring).

    Use as a context manager around `target.apply(event)`; `verdicts()` afterwards. For an event
    that is not `RestartProxy`, a target whose proxy does not keep its rules, or a state without
    a Service with usable endpoints, it does nothing and judges nothing. Leaving the block waits
    for the request in flight (at most `timeout_s`); an error in the sending thread is raised
    there.
    """

    def __init__(
        self,
        target: Target,
        event: Event,
        state: ClusterState,
        port: str,
        timeout_s: float,
        now: Callable[[], float],
    ) -> None:
        self.target, self.port, self.timeout_s, self.now = target, port, timeout_s, now
        self.expected: Expectation | None = None
        # changes made while the proxy is down leave its old rules wrong meanwhile: not sampled
        if isinstance(event, RestartProxy) and not event.while_down and keeps_proxy_state(target):
            expected = (expect(state, name, port) for name in sorted(state.services))
            self.expected = next((e for e in expected if e.usable and e.service), None)
        self.outcomes: list[Outcome] = []
        self.started_s = self.finished_s = 0.0
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def __enter__(self) -> DuringRestart:
        if self.expected is not None:
            self.started_s = self.now()
            self._thread = threading.Thread(target=self._send, name="during-restart", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 5.0)
            self.finished_s = self.now()
        if self._failure is not None and kind is None:
            raise self._failure

    def _request(self) -> TrafficRequest:
        assert self.expected is not None and self.expected.service is not None
        return TrafficRequest(
            service=self.expected.service.name,
            client=CLIENTS[0],
            count=1,
            port=self.port,
            timeout_s=self.timeout_s,
        )

    def _send(self) -> None:
        """At least one request, then more until the restart has ended (or MAX_REQUESTS)."""
        request = self._request()
        try:
            while len(self.outcomes) < MAX_REQUESTS:
                self.outcomes.extend(self.target.send(request).outcomes)
                if self._done.is_set():
                    return
        except BaseException as error:  # raised again in the caller's thread
            self._failure = error

    def verdicts(self) -> list[Verdict]:
        """Availability and no-stale-traffic over the sample, marked `part: during-restart`;
        none when nothing was sent."""
        if self.expected is None or self.expected.service is None or not self.outcomes:
            return []
        name, usable = self.expected.service.name, self.expected.usable
        sample = TrafficSample(
            self._request(), tuple(self.outcomes), self.started_s, self.finished_s
        )
        found = [check_availability(name, usable, sample), check_no_stale(name, usable, sample)]
        return [
            replace(
                v,
                message=f"{v.message} (fresh connections during a proxy restart)",
                evidence={**v.evidence, "part": PART, "requests": sample.total},
            )
            for v in found
        ]
