"""Deliberately broken data planes: each overrides one small piece of a real proxy and breaks
one promise on real packets. The suite (and the rule oracle) must catch every one of them.

- mutant-iptables-wrong-probability (fairness): rule i of n uses 1/n instead of 1/(n-i), so
  the first endpoints get more than 1/n (visible from n = 3).
- mutant-iptables-never-removes (removal): an endpoint's rules stay once programmed, so removed,
  unready and deleted pods keep getting new connections.
- mutant-iptables-ignores-readiness (readiness): every listed endpoint is used, ready or not.
- mutant-iptables-drop-empty (REJECT): a Service without endpoints DROPs, so clients time out
  instead of being refused.
- mutant-nftables-no-affinity (ClientIP affinity): no affinity sets, so a client's next
  connection is balanced again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from harness.model.endpoints import unique_endpoints
from harness.model.objects import Destination, Service
from harness.proxies.iptables import IptablesProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.plan import PortPlan, unique_by_address


class WrongProbabilityProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-wrong-probability"
    description: ClassVar[str] = "iptables with every probability rule at 1/n instead of 1/(n-i)"

    def probability(self, index: int, count: int) -> float:
        return 1.0 / count


class NeverRemovesProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-never-removes"
    description: ClassVar[str] = "iptables that never deletes an endpoint's rules once programmed"

    def plan(self, service: Service) -> tuple[PortPlan, ...]:
        previous = {plan.port_name: plan for plan in self.plans.get(service.name, ())}
        plans = []
        for plan in super().plan(service):
            kept = previous[plan.port_name].destinations if plan.port_name in previous else ()
            merged = unique_by_address((*plan.destinations, *kept))
            plans.append(replace(plan, destinations=merged))
        return tuple(plans)


class IgnoresReadinessProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-ignores-readiness"
    description: ClassVar[str] = "iptables that uses every listed endpoint, ready or not"

    def destinations(self, service: Service, port_name: str) -> list[Destination]:
        found = []
        for endpoint, endpoint_slice in unique_endpoints(self.slices_of(service.name)):
            port = endpoint_slice.port_for(port_name)
            if port is not None:
                found.append(Destination(endpoint.backend, endpoint.address, port, endpoint.node))
        return sorted(found, key=lambda destination: destination.backend)


class DropEmptyProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-drop-empty"
    description: ClassVar[str] = "iptables that DROPs (not REJECTs) for Services without endpoints"
    no_endpoints_target: ClassVar[str] = "DROP"


class NoAffinityProxy(NftablesProxy):
    name: ClassVar[str] = "mutant-nftables-no-affinity"
    description: ClassVar[str] = "nftables that ignores sessionAffinity ClientIP"

    def affinity_enabled(self, service: Service) -> bool:
        return False


MUTANT_PROXIES: dict[str, type] = {
    cls.name: cls
    for cls in (
        WrongProbabilityProxy,
        NeverRemovesProxy,
        IgnoresReadinessProxy,
        DropEmptyProxy,
        NoAffinityProxy,
    )
}
