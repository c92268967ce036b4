"""The external proxy protocol, version 1: message encoding and validation of both directions.

The schema ships as `harness/schemas/proxy-protocol.json`. Requests go from the harness to the
proxy, one JSON object per line on its stdin; each is answered by exactly one reply line on its
stdout, `{"ok": true}` or `{"ok": false, "error": "..."}`. This module is pure: it builds,
checks and reads back messages (the `*_from_json` decoders, used by `harness.proxies.sdk` on the
proxy's side) and never does I/O beyond reading the schema file once.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from harness.model.objects import (
    Affinity,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    labels_of,
)
from harness.proxies.base import NodeContext

PROTOCOL_VERSION = 1
SCHEMA_RESOURCE = "schemas/proxy-protocol.json"
MAX_LINE_BYTES = 1 << 20

Message = dict[str, Any]


class ProtocolError(Exception):
    """A line that is not a valid message; the text says what is wrong with it, in one line."""


@cache
def schema() -> dict[str, Any]:
    """The protocol's JSON Schema (both directions, under `$defs`)."""
    loaded: dict[str, Any] = json.loads(files("harness").joinpath(SCHEMA_RESOURCE).read_text())
    return loaded


@cache
def _validator(direction: str) -> Draft202012Validator:
    root = schema()
    return Draft202012Validator({"$defs": root["$defs"], "$ref": f"#/$defs/{direction}"})


def _check(direction: str, message: Any) -> None:
    error = next(iter(_validator(direction).iter_errors(message)), None)
    if error is not None:
        raise ProtocolError(_describe(error))


def _describe(error: ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "the message"
    return f"{where}: {error.message}"[:300]


def check_request(message: Message) -> None:
    """Raise ProtocolError unless `message` is a valid request (harness to proxy)."""
    _check("request", message)


def decode(line: bytes | str) -> Any:
    """The JSON value of one line, in either direction; ProtocolError (one line) naming why
    there is none: not UTF-8 (bytes, or text holding lone surrogates as a bad byte is read),
    not JSON, nested too deeply, or a number longer than Python reads."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        text.encode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError) as error:
        raise ProtocolError(f"not UTF-8 text ({error.reason} at {error.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ProtocolError(f"not JSON ({error})") from None
    except RecursionError:
        raise ProtocolError("not a message (nested too deeply)") from None
    except ValueError as error:  # a number longer than Python's int-from-string limit
        raise ProtocolError(f"not a message ({str(error).split(';')[0]})") from None


def parse_reply(line: bytes) -> Message:
    """The reply in `line`; ProtocolError if it is not one JSON object valid as a reply."""
    reply = decode(line)
    _check("reply", reply)
    assert isinstance(reply, dict)
    return reply


def encode(message: Message) -> bytes:
    """One request line."""
    return json.dumps(message, separators=(",", ":"), sort_keys=True).encode() + b"\n"


# -- the objects, as the schema spells them -----------------------------------------------------
def node_json(node: NodeContext) -> Message:
    return {
        "name": node.node,
        "netns": node.netns,
        "prefix": node.prefix,
        "workdir": str(node.workdir),
        "service_cidr": node.service_cidr,
    }


def service_json(service: Service) -> Message:
    """The Service as the protocol carries it. `labels` (optional in version 1) is present only
    when the Service has labels, which only the opt-out labels give it, and only a proxy that
    declares the `opt-out-labels` feature is handed such a Service: a proxy written before the
    field never sees it. Likewise the external fields (`external_json`) and each port's
    `node_port` are present only for a NodePort or LoadBalancer Service, which only a proxy
    declaring `node-port`, `load-balancer` or `health-check-node-port` is handed."""
    labels = {"labels": dict(service.labels)} if service.labels else {}
    return {
        "name": service.name,
        "namespace": service.namespace,
        "cluster_ip": service.cluster_ip,
        "ports": [
            {
                "name": p.name,
                "port": p.port,
                "target_port": p.target_port,
                "protocol": p.protocol,
                **({"node_port": p.node_port} if p.node_port is not None else {}),
            }
            for p in service.ports
        ],
        "session_affinity": service.session_affinity.value,
        "affinity_timeout_s": service.affinity_timeout_s,
        "publish_not_ready_addresses": service.publish_not_ready_addresses,
        "internal_traffic_policy": service.internal_traffic_policy.value,
        **labels,
        **external_json(service),
        **distribution_json(service),
    }


def distribution_json(service: Service) -> Message:
    """`traffic_distribution` when the Service has one (none otherwise): only a proxy that
    declares `topology` is handed such a Service, so one written before the field never sees
    it. Informative: a proxy acts on the endpoints' `zone_hints`."""
    if service.traffic_distribution is None:
        return {}
    return {"traffic_distribution": service.traffic_distribution}


def hints_json(endpoint: Endpoint) -> Message:
    """`zone_hints` when the endpoint has any (none otherwise; only Services with a
    trafficDistribution give them, and only to proxies that declare `topology`)."""
    return {"zone_hints": list(endpoint.zone_hints)} if endpoint.zone_hints else {}


def external_json(service: Service) -> Message:
    """A NodePort or LoadBalancer Service's external fields (none for a ClusterIP one): its
    type, externalTrafficPolicy, and, once assigned, its ingress IP and healthCheckNodePort;
    and any Service's externalIPs (`external_ips_json`)."""
    if service.type == ServiceType.CLUSTER_IP:
        return external_ips_json(service)
    assigned = {
        "load_balancer_ip": service.load_balancer_ip,
        "health_check_node_port": service.health_check_node_port,
    }
    return {
        "type": service.type.value,
        "external_traffic_policy": service.external_traffic_policy.value,
        **{key: value for key, value in assigned.items() if value is not None},
        **external_ips_json(service),
    }


def external_ips_json(service: Service) -> Message:
    """A Service's externalIPs with its externalTrafficPolicy (any type), none without any: only
    a proxy declaring `external-ips` is handed a Service that has them."""
    if not service.external_ips:
        return {}
    return {
        "external_ips": list(service.external_ips),
        "external_traffic_policy": service.external_traffic_policy.value,
    }


def endpoint_slice_json(endpoint_slice: EndpointSlice) -> Message:
    return {
        "name": endpoint_slice.name or f"{endpoint_slice.service}-0",
        "namespace": endpoint_slice.namespace,
        "service": endpoint_slice.service,
        "ports": [
            {"name": p.name, "port": p.port, "protocol": p.protocol} for p in endpoint_slice.ports
        ],
        "endpoints": [
            {
                "address": e.address,
                "pod": e.pod,
                "uid": e.uid,
                "node": e.node,
                "zone": e.zone,
                "ready": e.ready,
                "serving": e.serving,
                "terminating": e.terminating,
                **hints_json(e),
            }
            for e in endpoint_slice.endpoints
        ],
    }


def hello(node: NodeContext) -> Message:
    return {"type": "hello", "protocol": PROTOCOL_VERSION, "node": node_json(node)}


# -- and back: the proxy's side (harness.proxies.sdk) --------------------------------------------
def node_from_json(node: Message) -> NodeContext:
    return NodeContext(
        node["name"], node["netns"], node["prefix"], Path(node["workdir"]), node["service_cidr"]
    )


def service_from_json(service: Message) -> Service:
    """The Service in a valid message. The protocol carries no selector (a proxy never needs
    one), so the result's selector is empty."""
    return Service(
        name=service["name"],
        cluster_ip=service["cluster_ip"],
        selector=(),
        ports=tuple(
            ServicePort(p["name"], p["port"], p["target_port"], p["protocol"], p.get("node_port"))
            for p in service["ports"]
        ),
        namespace=service["namespace"],
        session_affinity=Affinity(service["session_affinity"]),
        affinity_timeout_s=service["affinity_timeout_s"],
        publish_not_ready_addresses=service["publish_not_ready_addresses"],
        internal_traffic_policy=TrafficPolicy(service["internal_traffic_policy"]),
        labels=labels_of(service.get("labels", {})),
        type=ServiceType(service.get("type", ServiceType.CLUSTER_IP.value)),
        external_traffic_policy=TrafficPolicy(
            service.get("external_traffic_policy", TrafficPolicy.CLUSTER.value)
        ),
        health_check_node_port=service.get("health_check_node_port"),
        load_balancer_ip=service.get("load_balancer_ip"),
        external_ips=tuple(service.get("external_ips", ())),
        traffic_distribution=service.get("traffic_distribution"),
    )


def endpoint_slice_from_json(endpoint_slice: Message) -> EndpointSlice:
    """The EndpointSlice in a valid message."""
    return EndpointSlice(
        service=endpoint_slice["service"],
        ports=tuple(
            EndpointPort(p["name"], p["port"], p["protocol"]) for p in endpoint_slice["ports"]
        ),
        endpoints=tuple(
            Endpoint(
                e["address"],
                e["pod"],
                e["uid"],
                e["node"],
                e["zone"],
                e["ready"],
                e["serving"],
                e["terminating"],
                tuple(e.get("zone_hints", ())),
            )
            for e in endpoint_slice["endpoints"]
        ),
        namespace=endpoint_slice["namespace"],
        name=endpoint_slice["name"],
    )
