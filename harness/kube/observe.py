"""Watching the harness's namespace, and converting what is seen into the model's form.

`Watched` keeps a live cache of one resource kind in one namespace with the list-then-watch
pattern of client-go's informers: list, then watch from the list's resourceVersion, and list again
when the watch ends or expires (410 Gone). Reading the cache makes no request. EndpointSlices are
watched through the `kubernetes.io/service-name` label (discovery/v1; the label the EndpointSlice
controller sets, KEP-752), the harness's pods through its run label. The label selector is also
applied on the client side, since some servers (mock ones) ignore it.

`to_model_slice` converts a discovery/v1 EndpointSlice into `harness.model.objects.EndpointSlice`:
the pod name and model incarnation uid come from the endpoint's `targetRef` (the uid mapped back
through the incarnation label the harness put on each pod), the node from `nodeName` mapped back
to the model's node name, and the conditions follow the API's documented reading of unset values
(ready unset: ready; serving unset: as ready; terminating unset: false).

Waiting is on the watch, never by polling the API: `Watched.wait_until` sleeps on the cache's
condition variable and looks again only when a watch event (or a re-list) changed the cache;
`wait_for_names` waits for named objects to appear or to be gone.

Observing changes nothing in the cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from harness.errors import HarnessError
from harness.kube.api import Cluster, translate
from harness.kube.objects import INCARNATION_LABEL, SERVICE_NAME_LABEL
from harness.model.objects import (
    DEFAULT_NAMESPACE,
    ZONES,
    Endpoint,
    EndpointPort,
    EndpointSlice,
)

_WATCH: Any = watch.Watch  # untyped in the client package
WATCH_TIMEOUT_S = 30  # server-side watch timeout; the stream is then re-listed
READ_TIMEOUT_S = 40.0  # client-side: some servers ignore timeoutSeconds
RETRY_PAUSE_S = 0.5
FAILURES_BEFORE_REPORT = 3


def selector_matches(selector: str, labels: Mapping[str, str] | None) -> bool:
    """Whether `labels` satisfy a label selector of `key`, `key=value` terms (comma-joined)."""
    labels = labels or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, equals, value = term.partition("=")
        if equals:
            if labels.get(key) != value:
                return False
        elif key not in labels:
            return False
    return True


class Watched:
    """A live cache of one resource kind in one namespace, kept by list-then-watch.

    `start()` lists once synchronously (so errors such as 403 surface at once, as one line) and
    then watches in a daemon thread. `items()` returns the cached objects and re-raises, on the
    caller's thread, a problem the watch thread met repeatedly. `stop()` ends the thread within
    the read timeout; it never deletes anything.
    """

    def __init__(
        self,
        cluster: Cluster,
        list_function: Callable[..., Any],
        namespace: str,
        label_selector: str,
        what: str,
        on_change: Callable[[str, Any], None] | None = None,
    ) -> None:
        self._cluster = cluster
        self._list = list_function
        self._namespace = namespace
        self._selector = label_selector
        self._what = what
        self._on_change = on_change
        self._objects: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._changed = threading.Condition(self._lock)
        self._problem: HarnessError | None = None
        self._thread: threading.Thread | None = None
        self._watch: Any = None
        self.generation = 0  # increases with every change seen

    def start(self) -> None:
        resource_version = self._relist()
        self._thread = threading.Thread(
            target=self._run, args=(resource_version,), name=f"watch-{self._what}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """End the watch thread: flag it, and shut the socket of the stream it may block on
        (kubernetes.watch.Watch.stop); a stream opened in the meantime is shut on a retry."""
        self._stopped.set()
        for _ in range(5):
            with self._lock:
                current = self._watch
            if current is not None:
                current.stop()
            if self._thread is None:
                return
            self._thread.join(timeout=0.2)
            if not self._thread.is_alive():
                return

    def items(self) -> list[Any]:
        with self._lock:
            if self._problem is not None:
                raise self._problem
            return list(self._objects.values())

    def get(self, name: str) -> Any | None:
        with self._lock:
            return self._objects.get(name)

    def wait_for_change(self, generation: int, timeout_s: float) -> int:
        """Block until the cache changes past `generation` or `timeout_s` passes."""
        with self._changed:
            self._changed.wait_for(lambda: self.generation > generation, timeout=timeout_s)
            return self.generation

    def wait_until(self, predicate: Callable[[Mapping[str, Any]], bool], timeout_s: float) -> bool:
        """Block until `predicate(cache)` holds or `timeout_s` passes; whether it holds.

        The predicate is called with the cache (name -> object) under the cache's lock, once now
        and then once per change the watch delivers, never on a timer: it must be quick and must
        not call back into this object. A problem the watch thread met repeatedly is raised, as
        `items()` raises it, as soon as it is known.
        """

        def settled() -> bool:
            return self._problem is not None or predicate(self._objects)

        with self._changed:
            holds = self._changed.wait_for(settled, timeout=max(timeout_s, 0.0))
            if self._problem is not None:
                raise self._problem
            return bool(holds)

    # -- the watch thread ---------------------------------------------------------------------
    def _relist(self) -> str | None:
        listing = self._cluster.call(
            f"list {self._what} in namespace {self._namespace}",
            self._list,
            self._namespace,
            label_selector=self._selector,
        )
        fresh = {
            item.metadata.name: item
            for item in (listing.items if listing is not None else [])
            if selector_matches(self._selector, item.metadata.labels)
        }
        with self._changed:
            self._objects = fresh
            self._problem = None  # the server answers again
            self.generation += 1
            self._changed.notify_all()
        if self._on_change is not None:
            for item in fresh.values():
                self._on_change("ADDED", item)
        return listing.metadata.resource_version if listing is not None else None

    def _run(self, resource_version: str | None) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist()
                self._stream(resource_version)
                failures = 0
            except ApiException as error:
                failures = self._failed(failures, error if error.status != 410 else None)
            except HarnessError as error:
                failures = self._failed(failures, error)
            except Exception as error:  # network errors and read timeouts end a stream
                failures = self._failed(failures, error)
            resource_version = None  # list again: events may have been missed

    def _failed(self, failures: int, error: BaseException | None) -> int:
        if error is None or self._stopped.is_set():
            return 0
        failures += 1
        if failures >= FAILURES_BEFORE_REPORT:
            problem = error if isinstance(error, HarnessError) else None
            if problem is None:
                problem = translate(
                    error,
                    f"watch {self._what} in namespace {self._namespace}",
                    self._cluster.server,
                )
            with self._changed:
                self._problem = problem
                self._changed.notify_all()  # a waiter learns of it at once
        self._stopped.wait(RETRY_PAUSE_S * failures)
        return failures

    def _stream(self, resource_version: str | None) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            self._watch = _WATCH()
        kwargs: dict[str, Any] = {
            "label_selector": self._selector,
            "timeout_seconds": WATCH_TIMEOUT_S,
            "_request_timeout": READ_TIMEOUT_S,
        }
        if resource_version and resource_version.isdigit():
            kwargs["resource_version"] = resource_version
        started_s = time.monotonic()
        for event in self._watch.stream(self._list, self._namespace, **kwargs):
            if self._stopped.is_set():
                break
            self._apply(event)
            if time.monotonic() - started_s > READ_TIMEOUT_S + WATCH_TIMEOUT_S:
                break  # a server that ignores timeoutSeconds: re-list now and then

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind, item = event.get("type"), event.get("object")
        if kind == "ERROR" or item is None or not hasattr(item, "metadata"):
            raise RuntimeError(f"watch error: {event.get('raw_object')}")
        if not selector_matches(self._selector, item.metadata.labels):
            return
        with self._changed:
            if kind == "DELETED":
                self._objects.pop(item.metadata.name, None)
            else:
                self._objects[item.metadata.name] = item
            self.generation += 1
            self._changed.notify_all()
        if self._on_change is not None:
            self._on_change(str(kind), item)


def wait_for_names(
    watched: Watched, names: Collection[str], present: bool, timeout_s: float
) -> list[str]:
    """Wait on the watch until every object in `names` is in the cache (`present`) or none is
    (not `present`), for at most `timeout_s`; the names still not so, sorted (empty: done).

    Reads the cache only: never lists, never deletes. Whoever asks decides whether a leftover
    is an error.
    """
    wanted = frozenset(names)

    def missing(cache: Mapping[str, Any]) -> set[str]:
        return {n for n in wanted if (n in cache) != present}

    watched.wait_until(lambda cache: not missing(cache), timeout_s)
    return sorted(missing({item.metadata.name: item for item in watched.items()}))


class Incarnations:
    """Which model incarnation each pod object is, from the harness's incarnation label.

    Remembers every pod uid it has seen, so an EndpointSlice that still lists an old incarnation
    is converted to that old incarnation's uid, not the current one's.
    """

    def __init__(self) -> None:
        self._by_uid: dict[str, str] = {}
        self._by_name: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, kind: str, pod: Any) -> None:
        incarnation = (pod.metadata.labels or {}).get(INCARNATION_LABEL)
        if incarnation is None:
            return
        with self._lock:
            if pod.metadata.uid:
                self._by_uid[pod.metadata.uid] = incarnation
            if kind == "DELETED":
                if self._by_name.get(pod.metadata.name) == incarnation:
                    del self._by_name[pod.metadata.name]
            else:
                self._by_name[pod.metadata.name] = incarnation

    def uid_of(self, name: str, kube_uid: str | None) -> str:
        """The model uid for a targetRef; `?<uid>` when the pod was never seen (not ours)."""
        with self._lock:
            if kube_uid:
                return self._by_uid.get(kube_uid, f"?{kube_uid}")
            return self._by_name.get(name, "?")


def zone_hints(endpoint: Any, zone: str) -> tuple[str, ...]:
    """A discovery/v1 endpoint's `hints.forZones` names in the model's terms: a hint naming the
    endpoint's own zone label becomes `zone`, the model's zone of its node (as the endpoint's
    zone does: a cluster whose zones are named otherwise still compares); any other hint keeps
    its name. Empty without hints. Reads only."""
    hints = getattr(endpoint, "hints", None)
    found = [getattr(z, "name", None) for z in (getattr(hints, "for_zones", None) or [])]
    own = getattr(endpoint, "zone", None)
    return tuple(zone if name == own else name for name in found if name)


def to_model_slice(
    item: Any,
    incarnations: Incarnations,
    model_nodes: Mapping[str, str],
    namespace: str = DEFAULT_NAMESPACE,
) -> EndpointSlice | None:
    """A discovery/v1 EndpointSlice in the model's terms; None if it belongs to no Service.

    `model_nodes` maps cluster node names back to the model's; an unknown node keeps its name.
    The zone is the model's zone of that node (clusters without zone labels still compare), and
    so are zone hints naming the endpoint's own zone (`zone_hints`).
    Only IPv4 slices carry the model's addresses; others are skipped.
    """
    labels = item.metadata.labels or {}
    service = labels.get(SERVICE_NAME_LABEL)
    if not service or (item.address_type or "IPv4") != "IPv4":
        return None
    ports = tuple(
        EndpointPort(p.name or "", int(p.port), p.protocol or "TCP")
        for p in (item.ports or [])
        if p.port is not None
    )
    endpoints = []
    for endpoint in item.endpoints or []:
        if not endpoint.addresses:
            continue
        reference = endpoint.target_ref
        pod = reference.name if reference is not None and reference.kind == "Pod" else ""
        uid = incarnations.uid_of(pod, reference.uid if reference is not None else None)
        node = model_nodes.get(endpoint.node_name or "", endpoint.node_name or "")
        conditions = endpoint.conditions
        ready = True if conditions is None or conditions.ready is None else bool(conditions.ready)
        serving = (
            ready if conditions is None or conditions.serving is None else bool(conditions.serving)
        )
        terminating = bool(conditions is not None and conditions.terminating)
        endpoints.append(
            Endpoint(
                address=endpoint.addresses[0],
                pod=pod,
                uid=uid,
                node=node,
                zone=ZONES.get(node, endpoint.zone or ""),
                ready=ready,
                serving=serving,
                terminating=terminating,
                zone_hints=zone_hints(endpoint, ZONES.get(node, endpoint.zone or "")),
            )
        )
    endpoints.sort(key=lambda e: (e.pod, e.address))
    return EndpointSlice(service, ports, tuple(endpoints), namespace, item.metadata.name)
