"""The reference model: pods, Services, EndpointSlices, endpoint choice. Pure, no I/O."""

from harness.model.endpoints import (
    categorize_endpoints,
    derive_slices,
    drops_new_connections,
    has_any_endpoints,
    must_drop,
    unique_endpoints,
    usable_destinations,
)
from harness.model.objects import (
    Affinity,
    Backend,
    ContainerPort,
    Destination,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Labels,
    Phase,
    Pod,
    Service,
    ServicePort,
    TrafficPolicy,
    labels_of,
)
from harness.model.state import ClusterState

__all__ = [
    "Affinity",
    "Backend",
    "ClusterState",
    "ContainerPort",
    "Destination",
    "Endpoint",
    "EndpointPort",
    "EndpointSlice",
    "Labels",
    "Phase",
    "Pod",
    "Service",
    "ServicePort",
    "TrafficPolicy",
    "categorize_endpoints",
    "derive_slices",
    "drops_new_connections",
    "has_any_endpoints",
    "labels_of",
    "must_drop",
    "unique_endpoints",
    "usable_destinations",
]
