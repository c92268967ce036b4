"""Swarm testing with aims: what each example of the search may generate.

Uniform generation spends its steps where the odds are, and the states where Service-proxy bugs
live are rare there (a Service left with only terminating endpoints, clients idle past their
affinity timeout). Two remedies, both drawn from Hypothesis's data so that a seed replays:

- **Swarm testing** (Groce, Zhang, Eide, Chen, Regehr, "Swarm Testing", ISSTA 2012): each example
  enables a random subset of the event kinds (each with probability 1/2, the ones the prelude
  needs always), so different examples stress different combinations instead of every example
  mixing every kind thinly.
- **Aims**: while some feature (`harness.coverage.FEATURES`) is checked fewer times than the
  run's goal, three examples in four aim at one of the two the run has checked least so far; an
  aimed example enables only the event kinds that lead there, narrows the event space's odds
  (long grace periods, ClientIP Services with 1-3 s timeouts, Local policy with pods on the
  other node...) and mostly follows the feature's recipe (`harness.recipes`), so the state is
  reached in a few events. Once every feature has met the goal, every example is a plain swarm.
  The odds are tuned on the model with the quick real-target profile (30 examples of 12 steps,
  every feature checked 3 times): with them 1 seed in 60 falls short, against every seed with
  half of the examples aimed among four candidates (`tests/core/test_coverage.py`).

Which features are short is decided from the model alone, so a run with the same seed aims the
same way on every target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from hypothesis import strategies as st

from harness.model.objects import Affinity, TrafficPolicy
from harness.strategies import GENERATORS, OTHER_NODE, EventSpace

ALWAYS = frozenset({"create_service", "scale", "probe"})
AIM_CANDIDATES = 2
"""An aimed example picks among this many of the least-checked features."""
AIMED_ODDS = (3, 4)
"""How often an example is aimed while some feature is short of the goal."""
RECIPE_ODDS = (7, 8)
"""How often an aimed example's next turn follows its recipe rather than a drawn event."""


def draw_odds(data: st.DataObject, odds: tuple[int, int], label: str) -> bool:
    """True with `odds` (numerator, denominator), drawn from `data`."""
    numerator, denominator = odds
    return data.draw(st.integers(0, denominator - 1), label=label) < numerator


@dataclass(frozen=True)
class Aim:
    """How to reach one feature: the event kinds to enable and the space's narrowed odds."""

    kinds: frozenset[str]
    space: dict[str, object] | None = None

    def narrow(self, space: EventSpace) -> EventSpace:
        return replace(space, **self.space) if self.space else space  # type: ignore[arg-type]

    def possible(self, space: EventSpace) -> bool:
        """Whether `space` can reach the aim: one at UDP flows needs UDP Services generated,
        one at SCTP SCTP Services."""
        wanted = self.space or {}
        return (space.makes_udp or not wanted.get("udp_only")) and (
            space.makes_sctp or not wanted.get("sctp_only")
        )


def _aim(*kinds: str, **space: object) -> Aim:
    return Aim(frozenset(kinds), space or None)


CLIENT_IP_ONLY: dict[str, object] = {"affinities": (Affinity.CLIENT_IP,), "short_affinity": True}
AIMS: dict[str, Aim] = {
    "usable-0": _aim("scale", "delete_pod", "set_selector", "set_ready", "pod_exit"),
    "usable-1": _aim("scale", "delete_pod"),
    "usable-2-6": _aim("scale", "create_pod"),
    "usable-7+": _aim("scale", "create_pod", max_replicas=10),
    "terminating-fallback": _aim("scale", "delete_pod", long_graces=True),
    "terminating-not-serving": _aim("delete_pod", "set_ready", "scale", long_graces=True),
    "local-no-local-endpoints": _aim(
        "set_traffic_policy", "create_pod", nodes=(OTHER_NODE,), policies=(TrafficPolicy.LOCAL,)
    ),
    "local-only-terminating": _aim(
        "set_traffic_policy", "delete_pod", long_graces=True, policies=(TrafficPolicy.LOCAL,)
    ),
    "publish-not-ready-toggled": _aim(
        "set_publish_not_ready", "set_ready", "delete_pod", long_graces=True
    ),
    "affinity-idle-past-timeout": _aim("wait", **CLIENT_IP_ONLY),
    "affinity-backend-removed": _aim(
        "delete_pod", "set_ready", "set_label", "set_affinity", **CLIENT_IP_ONLY
    ),
    "vip-reused": _aim("delete_service"),
    "named-port-per-pod": _aim("create_pod", http_ports=(8081,)),
    "pod-ip-reused": _aim("restart_pod", "delete_pod", "create_pod"),
    "selector-widened": _aim("set_selector", "create_pod", "set_label"),
    "selector-narrowed": _aim("set_selector", "create_pod", "set_label"),
    "evicted-pod": _aim("evict_pod"),
    "proxy-restarted": _aim("restart_proxy", "create_pod"),
    "stale-snapshot": _aim("stale_snapshot", "create_pod", "delete_pod", "set_selector"),
    "unobserved-changes": _aim("unobserved_changes", "scale", "create_pod"),
    "out-of-window": _aim("out_of_window", "create_pod", "scale"),
    "long-lived-through-change": _aim("restart_proxy", "set_ready", "delete_pod", "create_pod"),
    "multi-port-named": _aim(
        "create_multi_port_pod", "set_service_port", "create_pod", multi_port_odds=1
    ),
    "hairpin": _aim("scale", "delete_pod"),
    "source-ip-checked": _aim("scale", "create_pod"),
    "opted-out": _aim("set_service_label", "create_pod"),
    "opt-out-removed": _aim("set_service_label", "create_pod"),
    "udp-flow-through-change": _aim(
        "set_ready", "delete_pod", "restart_pod", "restart_proxy", udp_only=True
    ),
    "changed-while-down": _aim(
        "restart_proxy", "set_ready", "delete_pod", "create_pod", changes_while_down=True
    ),
    "seen-from-every-node": _aim("scale", "create_pod", "set_traffic_policy"),
    "node-port-reached": _aim("set_service_type", "scale", "create_pod"),
    "udp-node-port-reached": _aim("set_service_type", "scale", "create_pod", udp_only=True),
    "load-balancer-reached": _aim("set_service_type", "scale", "create_pod"),
    "external-ip-reached": _aim("set_external_ips", "scale", "create_pod"),
    "external-local-no-local-endpoints": _aim(
        "set_service_type", "set_external_traffic_policy", "create_pod", "delete_pod"
    ),
    "health-check-only-terminating": _aim(
        "set_service_type", "set_external_traffic_policy", "delete_pod", "scale", long_graces=True
    ),
    "topology-narrowed": _aim("set_traffic_distribution", "scale", "create_pod"),
    "sctp-reached": _aim("scale", "create_pod", "delete_service", sctp_only=True),
    "dual-protocol-port": _aim(
        "create_dual_protocol_service",
        "add_service_port",
        "remove_service_port",
        "set_port_protocol",
        udp_only=True,
    ),
}


@dataclass(frozen=True)
class Swarm:
    """One example's generation: the enabled kinds, the event space, and its aim (if any)."""

    kinds: frozenset[str]
    space: EventSpace
    aim: str | None = None


def draw_swarm(data: st.DataObject, base: EventSpace, short: Sequence[str]) -> Swarm:
    """Draw one example's swarm. `short` lists the features checked least so far, the least
    first; an aimed example picks one of the first few."""
    candidates = [f for f in short if f in AIMS and AIMS[f].possible(base)][:AIM_CANDIDATES]
    aim: str | None = None
    if candidates and draw_odds(data, AIMED_ODDS, "aimed"):
        aim = data.draw(st.sampled_from(candidates), label="aim")
    optional = sorted(set(GENERATORS) - ALWAYS)
    enabled = {kind for kind in optional if data.draw(st.booleans(), label=f"enable {kind}")}
    if aim is None:
        return Swarm(frozenset(enabled | ALWAYS), base)
    return Swarm(AIMS[aim].kinds | ALWAYS, AIMS[aim].narrow(base), aim)
