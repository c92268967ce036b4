"""The Target contract: a whole system under test, driven one event at a time.

A Target is Jepsen's client: the runner applies each event to the model and to the target, waits
(bounded) for the target to converge, observes it and hands the observation to the checks. A target
never judges itself.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from harness.clock import Clock
from harness.events import Event
from harness.model.objects import EndpointSlice
from harness.proxies.base import keeps_rules_on_restart
from harness.traffic import Outcome, Reachability, TrafficRequest, TrafficSample


class Target(Protocol):
    """A system under test.

    Obligations, in the manner of Jepsen's Client protocol:

    - `open()` prepares the system (creates namespaces, connects to a cluster). It must not create
      any Service or pod; the system starts empty. It may take seconds. Everything it creates is
      named with the target's run prefix so that `harness clean` can find leftovers.
    - `apply(event)` makes the change the event describes, exactly as the model's `event.apply`
      does, and returns once the change was *requested* (written to the API, handed to the proxy);
      it must not wait for the data plane to reflect it - the runner measures that. For `Wait`
      events the runner has already let the time pass on `clock`; the target ends the grace
      periods that ran out. For `Probe` events the target does nothing. It must change nothing
      outside the system under test.
    - `endpoint_slices(service)` observes the EndpointSlices the target currently publishes for a
      Service, converted to the model's form. Observing changes nothing.
    - `send(request)` sends one bounded batch of requests and reports every outcome. It changes no
      cluster state, and returns within `request.count * request.timeout_s` plus a small overhead.
    - `close()` removes everything `open()` and `apply()` created, also after errors; calling it
      twice is harmless. It leaves nothing behind.
    - `reset()` (optional) returns the system to the empty state `open()` left, faster than
      `close()` and `open()`: every pod and Service is gone and allocation (addresses, pod
      incarnations) starts again as in a fresh `ClusterState`. Targets without it are closed and
      reopened between examples.
    - `clock` is the time the target lives in; the runner reads time only from it.
    """

    @property
    def name(self) -> str: ...

    @property
    def clock(self) -> Clock: ...

    def open(self) -> None: ...

    def apply(self, event: Event) -> None: ...

    def endpoint_slices(self, service: str) -> tuple[EndpointSlice, ...]: ...

    def send(self, request: TrafficRequest) -> TrafficSample: ...

    def close(self) -> None: ...


@runtime_checkable
class RuleOracle(Protocol):
    """Optional: a target whose data plane can be read back exactly (rules, maps, config).

    `reachability(service, port, client)` computes, from what is programmed right now (for example
    `iptables-save` or `nft -j list ruleset` read from the kernel), where a new connection from
    `client` to the Service port goes. It sends no traffic and changes nothing.
    """

    def reachability(self, service: str, port: str, client: str) -> Reachability: ...


@runtime_checkable
class ConnectionHolder(Protocol):
    """Optional: a target that holds long-lived kept-alive connections open across steps.

    - `hold(service, client, timeout_s)` opens one connection from `client` to the Service's
      VIP and port `http`, asks once and keeps it open: its number, or None when that request
      failed (nothing is kept), and the outcome.
    - `ask_held(number, timeout_s)` asks once more on it; a failed request closes and forgets
      the connection (an unknown number answers RESET).
    - `release_held()` closes them all; `reset()` and `close()` do too.

    For a Service whose port `http` is UDP (`harness.local.udp`), `hold` opens a *flow*: a
    socket with a fixed 5-tuple, kept whatever its first datagram got (always a number), and
    `ask_held` on it never forgets it; where its datagrams go is the data plane's conntrack.

    Each call is bounded by `timeout_s` and changes nothing but the client's own sockets.
    `relays_connections` says whether connections run through the proxy's own process (a
    userspace proxy), so that they end when it restarts (kube-proxy's userspace mode did).
    """

    relays_connections: bool

    def hold(self, service: str, client: str, timeout_s: float) -> tuple[int | None, Outcome]: ...

    def ask_held(self, number: int, timeout_s: float) -> Outcome: ...

    def release_held(self) -> None: ...


def restart_unsupported(target: object) -> str | None:
    """Why `target` cannot restart its proxy (`RestartProxy`), from its optional
    `restart_unsupported` attribute, or None when it can (the model; the local cluster)."""
    why = getattr(target, "restart_unsupported", None)
    return str(why) if why else None


def keeps_proxy_state(target: object) -> bool:
    """Whether a restart of the target's proxy (`RestartProxy`) keeps the proxy's kernel state:
    its rules, and with them the affinity memory of its xt_recent lists or nft sets, as
    kube-proxy's restart does. The target's optional `keeps_proxy_state` attribute, else its
    `proxy`'s declaration (`harness.proxies.base.keeps_rules_on_restart`); False for a target
    with neither, whose restarts then excuse lost affinity."""
    declared = getattr(target, "keeps_proxy_state", None)
    if declared is not None:
        return bool(declared)
    return keeps_rules_on_restart(getattr(target, "proxy", None))


def stale_unsupported(target: object) -> str | None:
    """Why `target` cannot show its proxy a stale snapshot (`StaleSnapshot`), from its optional
    `stale_unsupported` attribute, or None when it can (the model; the local cluster, which
    hands the proxy its inputs itself)."""
    why = getattr(target, "stale_unsupported", None)
    return str(why) if why else None


def unobserved_unsupported(target: object) -> str | None:
    """Why `target` cannot keep changes from its proxy (`UnobservedChanges`), from its optional
    `unobserved_unsupported` attribute, or None when it can (the model; the local cluster, which
    hands the proxy its inputs itself)."""
    why = getattr(target, "unobserved_unsupported", None)
    return str(why) if why else None


def out_of_window_unsupported(target: object) -> str | None:
    """Why `target` cannot have a pod send out-of-window segments (`OutOfWindow`), from its
    optional `out_of_window_unsupported` attribute, or None when it can (the model; the local
    cluster with a proxy that translates connections rather than relaying them)."""
    why = getattr(target, "out_of_window_unsupported", None)
    return str(why) if why else None


def reads_rules(target: object) -> bool:
    """Whether `target` can show its programmed rules: it has `reachability` (`RuleOracle`) and
    does not say otherwise through a `reads_rules` attribute (a local target reads rules only
    when its proxy can)."""
    return isinstance(target, RuleOracle) and bool(getattr(target, "reads_rules", True))


def sends_from_pods(target: object) -> bool:
    """Whether `target` sends from inside a pod (`TrafficRequest.client_pod`), from its optional
    `sends_from_pods` attribute: the model and the local cluster's namespaces do; a target
    without the attribute does not, and is never sent such a request."""
    return bool(getattr(target, "sends_from_pods", False))


UNKNOWN_VERSION = "unknown"


def target_proxy_metrics(target: object) -> dict[str, Any] | None:
    """What `target`'s optional `proxy_metrics()` accessor reports of the proxy's own sync
    metrics (`harness.kube.metrics.summary` or `not_available`), or None for a target without
    one. A failing accessor gives "not available" with its reason; this never raises."""
    accessor = getattr(target, "proxy_metrics", None)
    if not callable(accessor):
        return None
    try:
        given = accessor()
    except Exception as error:  # metrics annotate a run; they never end one
        return {"available": False, "reason": f"reading them failed: {error}"}
    return dict(given) if isinstance(given, dict) else None


def target_versions(target: object) -> dict[str, str]:
    """What `target` knows of its versions, from its optional `versions()` accessor: "harness"
    always, plus e.g. "server" (the API server's gitVersion) and "proxy" (the proxy's version
    line, or what an external candidate declared). A target without the accessor, or one whose
    accessor fails, gives the harness's version alone; this never raises and sends nothing the
    accessor does not."""
    from harness import __version__

    known = {"harness": __version__}
    accessor = getattr(target, "versions", None)
    if callable(accessor):
        try:
            given = accessor()
        except Exception:  # versions annotate a run; they never end one
            given = {}
        if isinstance(given, dict):
            known.update({str(k): str(v) for k, v in given.items()})
    return known


def target_features(target: object) -> tuple[frozenset[str], str]:
    """The conformance features `target` supports (`harness.features`) and where that came
    from: its optional `features()` accessor; else its proxy's declaration (an external proxy's
    `hello` reply, read after `open()`; a proxy class's `features` attribute), core only when
    the proxy declares none; else, for a target running no proxy of its own (the model, a real
    cluster), every feature. UsageError (one line) for a declaration naming an unknown feature
    or omitting a core one. Sends nothing and changes nothing."""
    from harness.features import ALL_FEATURES, declared_features

    accessor = getattr(target, "features", None)
    if callable(accessor):
        return declared_features(accessor(), f"target {getattr(target, 'name', '?')}"), "target"
    proxy = getattr(target, "proxy", None)
    if proxy is None:
        return ALL_FEATURES, "every feature (no proxy of its own)"
    name = str(getattr(proxy, "name", "") or type(proxy).__name__)
    if hasattr(proxy, "declared_features"):  # an external proxy: its hello reply
        declared = getattr(proxy, "declared_features", None)
        origin = "hello reply" if declared is not None else "core only (none in hello)"
        return declared_features(declared, f"proxy {name!r} (hello features)"), origin
    declared = getattr(proxy, "features", None)
    origin = "proxy class" if declared is not None else "core only (none declared)"
    return declared_features(declared, f"proxy {name!r} (class attribute features)"), origin
