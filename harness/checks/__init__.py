"""The invariants. Each check is a pure function from what the model expects and what was
observed to a `Verdict` with its evidence; the runner decides when to call which."""

from harness.checks import affinity, connections, endpoints, fairness, latency, rules, traffic
from harness.checks import external as external
from harness.checks import nodes as nodes
from harness.checks import sources as sources
from harness.checks.verdict import Verdict

PROXY_CONTRACT = "proxy-contract"
"""The proxy process stays up and answers every request validly and in time; its failure
(`harness.proxies.failure.ProxyFailure`) ends the example as one verdict."""

PROPERTIES: dict[str, str] = {
    endpoints.PROPERTY: "EndpointSlices list exactly the selected pods with the right conditions",
    traffic.NO_STALE: "no new connection reaches a deleted, unready, relabelled-out or old pod",
    traffic.REJECT: (
        "a Service without usable endpoints refuses connections at once, or drops them when"
        " its endpoints are all on other nodes (internalTrafficPolicy Local)"
    ),
    traffic.AVAILABILITY: "no request fails while a usable endpoint exists",
    fairness.PROPERTY: "fresh connections reach every usable endpoint, uniformly",
    affinity.PROPERTY: "ClientIP affinity keeps a client on one live pod until the timeout",
    latency.PROPERTY: "every change is programmed within the deadline",
    rules.PROPERTY: "programmed rules give each usable endpoint exactly 1/n (rule targets only)",
    connections.PROPERTY: (
        "an established connection keeps its backend through changes and proxy restarts while"
        " its endpoint is usable, and is never silently moved to another backend"
    ),
    sources.SOURCE_IP: (
        "a pod reaching other pods through a ClusterIP Service keeps its own source address"
    ),
    sources.HAIRPIN: "a pod reaches itself through its own Service (hairpin)",
    nodes.PROPERTY: (
        "every node's proxy serves each Service as the model says for that node: its usable"
        " endpoints, DROP under Local policy with endpoints elsewhere only, REJECT with none"
    ),
    external.PROPERTY: (
        "NodePort traffic from outside reaches, at every node's address, what that node's"
        " externalTrafficPolicy allows (Local: its own endpoints, the client's address kept,"
        " DROP without any), and is refused when the Service has no endpoints; part"
        " load-balancer: the same at a LoadBalancer's ingress IP, handed to each node in turn;"
        " part external-ip: the same at a Service's externalIPs (any type)"
    ),
    PROXY_CONTRACT: "the proxy process stays up and answers every request validly and in time",
}

__all__ = ["PROPERTIES", "PROXY_CONTRACT", "Verdict"]
