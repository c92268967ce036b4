"""A proxy that syncs at most once a period, as kube-proxy does (`--min-sync-period`).

kube-proxy does not program when a change arrives: its handlers record the change and ask its
`BoundedFrequencyRunner` (pkg/util/async/bounded_frequency_runner.go) for a run, which starts at
once if the last one started at least `minInterval` ago and otherwise when that interval has
passed; changes arriving in between are coalesced into that next run, and each run reads every
change recorded before it starts (`syncProxyRules`: the change trackers are checked out first).
The new rules reach the kernel at the end of the run, `sync_proxy_rules_duration_seconds` later.
kube-proxy allows a burst of 2 runs; this runner allows 1, the stricter "at most once a period".

`BoundedSyncProxy` wraps any proxy that way: handlers queue the change, `sync()` only asks for a
run, and a worker thread replays the queued changes into the wrapped proxy and calls its `sync()`
(after `sync_duration_s`, the run's length). It reports what it has programmed
(`SyncReportingProxy.sync_state`), so the harness can wait for the data plane to be final instead
of judging traffic that the rules of an older state happen to deliver (issue 15: a same-IP pod
restart looks converged through the old rule, then the intermediate state is programmed).

The registered variants `iptables-slow-sync` and `nftables-slow-sync` run the harness's kernel
proxies with a 1 s period, their rules readable; `unreadable=True` hides `reachability`, for a
proxy whose rules the harness cannot read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import ClassVar

from harness.errors import HarnessError
from harness.model.objects import EndpointSlice, Service
from harness.proxies.base import (
    NodeContext,
    Proxy,
    SyncState,
    keeps_rules_on_restart,
    stop_for_restart,
)
from harness.proxies.iptables import IptablesProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.traffic import Reachability
from harness.versions import proxy_version

MIN_SYNC_PERIOD_S = 1.0
"""kube-proxy's default `--min-sync-period` (iptables and nftables modes)."""

STOP_JOIN_S = 5.0

Change = Callable[[Proxy], None]


class BoundedSyncProxy:
    """`inner`, synced at most once per `min_sync_period_s` by a worker thread (module docstring).

    Promises: every change handed over reaches `inner` in order, and `inner.sync()` follows it
    no later than one period plus one run after the `sync()` that asked for it; `sync_state()`
    is True only once `inner.sync()` returned after the last change handed over. A failure of
    `inner` in the worker is raised by the next `sync()` or `sync_state()`. All calls into
    `inner` after `start` happen under one lock, so rule reading never sees a half-applied run.
    """

    name: ClassVar[str] = "bounded"
    description: ClassVar[str] = "a proxy synced at most once a period (kube-proxy's runner)"

    def __init__(
        self,
        inner: Proxy,
        min_sync_period_s: float = MIN_SYNC_PERIOD_S,
        sync_duration_s: float = 0.0,
    ) -> None:
        if min_sync_period_s < 0 or sync_duration_s < 0:
            raise ValueError("min_sync_period_s and sync_duration_s must be >= 0")
        self.inner = inner
        self.min_sync_period_s = min_sync_period_s
        self.sync_duration_s = sync_duration_s
        self._state = threading.Condition()
        self._inner_lock = threading.Lock()
        self._queue: list[Change] = []
        self._handed = 0  # changes handed over so far
        self._programmed = 0  # of those, how many the last finished run programmed
        self._requested = False
        self._ready: tuple[list[Change], int] | None = None  # a run begun, not yet taken
        self._busy = False  # the worker is in a run
        self._last_start_s = -float("inf")
        self.runs = 0  # runs finished (for tests and reports)
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._worker: threading.Thread | None = None

    @property
    def declared_version(self) -> str:
        """The wrapped proxy's version line, for results (`harness.versions.proxy_version`)."""
        return proxy_version(self.inner)

    # -- the Proxy contract -------------------------------------------------------------------
    def start(self, node: NodeContext) -> None:
        self.inner.start(node)
        self._stopping.clear()
        self._worker = threading.Thread(target=self._run, name=f"{self.name}-sync", daemon=True)
        self._worker.start()

    def on_service_add(self, service: Service) -> None:
        self._hand(lambda p: p.on_service_add(service))

    def on_service_update(self, old: Service, new: Service) -> None:
        self._hand(lambda p: p.on_service_update(old, new))

    def on_service_delete(self, service: Service) -> None:
        self._hand(lambda p: p.on_service_delete(service))

    def on_endpoint_slice_add(self, endpoint_slice: EndpointSlice) -> None:
        self._hand(lambda p: p.on_endpoint_slice_add(endpoint_slice))

    def on_endpoint_slice_update(self, old: EndpointSlice, new: EndpointSlice) -> None:
        self._hand(lambda p: p.on_endpoint_slice_update(old, new))

    def on_endpoint_slice_delete(self, endpoint_slice: EndpointSlice) -> None:
        self._hand(lambda p: p.on_endpoint_slice_delete(endpoint_slice))

    def sync(self) -> None:
        """Ask for a run (at once, or when the period since the last run's start is over) if a
        change was handed over since the last run began; returns without waiting for it. As
        kube-proxy's handlers, a sync with nothing new asks for nothing (and so does not delay
        the next change's run)."""
        with self._state:
            self._raise_failure()
            if self._queue:
                self._requested = True
                self._begin_if_due()
                self._state.notify_all()

    def sync_state(self) -> SyncState:
        """Whether every change handed over is programmed (`SyncReportingProxy`)."""
        with self._state:
            self._raise_failure()
            handed, programmed = self._handed, self._programmed
        return SyncState(
            handed == programmed,
            f"the proxy's own report: {programmed} of the {handed} changes handed to it"
            f" programmed (syncs at most every {self.min_sync_period_s:g} s)",
        )

    def stop(self) -> None:
        """Stop the worker (a run in progress finishes first), drop what it had not programmed,
        and stop `inner`. Harmless twice."""
        self._stop_worker()
        self.inner.stop()

    @property
    def keeps_rules_on_restart(self) -> bool:
        """Whether `inner` keeps its rules across a restart (`RuleKeepingProxy`): so does this."""
        return keeps_rules_on_restart(self.inner)

    def stop_for_restart(self) -> None:
        """As `stop`, but `inner` is stopped for a restart: its rules stay for the next
        instance, whose first run replaces them (`harness.proxies.base.stop_for_restart`)."""
        self._stop_worker()
        stop_for_restart(self.inner)

    def _stop_worker(self) -> None:
        self._stopping.set()
        with self._state:
            self._state.notify_all()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.join(STOP_JOIN_S + self.sync_duration_s)
        with self._state:
            self._queue, self._requested, self._ready, self._busy = [], False, None, False
            self._programmed = self._handed

    # -- the worker -----------------------------------------------------------------------------
    def _hand(self, change: Change) -> None:
        with self._state:
            self._queue.append(change)
            self._handed += 1

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _due_in_s(self) -> float:
        return self._last_start_s + self.min_sync_period_s - time.monotonic()

    def _begin_if_due(self) -> None:
        """Begin a run (check out the queued changes) if one was asked for, none is in progress
        and the period is over; called with `_state` held. A run due when `sync()` asks for it
        begins there, so it holds exactly the changes handed over before that call."""
        if self._requested and self._ready is None and not self._busy and self._due_in_s() <= 0:
            self._requested, self._last_start_s = False, time.monotonic()
            self._ready, self._queue = (self._queue, self._handed), []

    def _next_run(self) -> tuple[list[Change], int] | None:
        """Wait until a run has begun; the changes it programs and the count it brings the proxy
        to. None when stopping."""
        with self._state:
            while not self._stopping.is_set():
                self._begin_if_due()
                if self._ready is not None:
                    run, self._ready, self._busy = self._ready, None, True
                    return run
                self._state.wait(max(self._due_in_s(), 0.0) if self._requested else None)
        return None

    def _run(self) -> None:
        while (run := self._next_run()) is not None:
            changes, reaches = run
            if self._stopping.wait(self.sync_duration_s):
                return
            try:
                with self._inner_lock:
                    for change in changes:
                        change(self.inner)
                    self.inner.sync()
            except BaseException as error:  # raised again in the caller's thread
                with self._state:
                    self._failure = error
                return
            with self._state:
                self._programmed, self._busy = reaches, False
                self.runs += 1


class ReadableBoundedSyncProxy(BoundedSyncProxy):
    """A `BoundedSyncProxy` whose wrapped proxy reads its rules back (`RuleReadingProxy`)."""

    def reachability(self, service: Service, port_name: str, client_ip: str) -> Reachability:
        """The wrapped proxy's `reachability`, never in the middle of a run."""
        read = getattr(self.inner, "reachability", None)
        if not callable(read):
            raise HarnessError(f"the {self.inner.name} proxy cannot read its rules back")
        with self._inner_lock:
            found: Reachability = read(service, port_name, client_ip)
        return found


def bounded(
    inner: Callable[[], Proxy],
    min_sync_period_s: float = MIN_SYNC_PERIOD_S,
    sync_duration_s: float = 0.0,
    *,
    unreadable: bool = False,
) -> Callable[[], BoundedSyncProxy]:
    """A maker of fresh bounded proxies around fresh `inner()` proxies (a `ProxyFactory`); with
    `unreadable` the harness cannot read their rules."""
    wrapper = BoundedSyncProxy if unreadable else ReadableBoundedSyncProxy

    def make() -> BoundedSyncProxy:
        return wrapper(inner(), min_sync_period_s, sync_duration_s)

    return make


class SlowSyncProxy(ReadableBoundedSyncProxy):
    """One of the harness's kernel proxies (`inner_class`), synced at most once a second."""

    inner_class: ClassVar[type[KernelRuleProxy]]

    def __init__(self) -> None:
        super().__init__(self.inner_class())


class SlowSyncIptables(SlowSyncProxy):
    name: ClassVar[str] = "iptables-slow-sync"
    description: ClassVar[str] = "the iptables proxy, synced at most once a second (as kube-proxy)"
    inner_class = IptablesProxy


class SlowSyncNftables(SlowSyncProxy):
    name: ClassVar[str] = "nftables-slow-sync"
    description: ClassVar[str] = "the nftables proxy, synced at most once a second (as kube-proxy)"
    inner_class = NftablesProxy
