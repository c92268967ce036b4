"""Each event's API operations, computed by `plan` from the model states before and after it."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.events import (
    CreateMultiPortPod,
    CreateMultiPortService,
    CreatePod,
    CreateService,
    DeletePod,
    DeleteService,
    EvictPod,
    PodExit,
    RestartPod,
    Scale,
    SetAffinity,
    SetLabel,
    SetPublishNotReady,
    SetReady,
    SetSelector,
    SetServicePort,
    SetTrafficPolicy,
    Wait,
    apply_all,
)
from harness.kube.objects import (
    INCARNATION_LABEL,
    MANAGED_BY,
    MANAGED_BY_KEY,
    MIN_API_GRACE_S,
    NOTHING_SELECTOR,
    Operation,
    Placement,
    Verb,
    parse_hostname,
    plan,
    pod_hostname,
)
from harness.model.objects import Affinity, TrafficPolicy, labels_of

PLACEMENT = Placement("svc-lb-hk00001", "hk00001", nodes={"node-1": "w1", "node-2": "w2"})
WEB = labels_of({"app": "web"})
BASE = [CreateService("web", WEB), CreatePod("web-a", WEB)]


def ops(event: object, before: list[object] = BASE) -> list[Operation]:
    state = apply_all(before)  # type: ignore[arg-type]
    return plan(state, event.apply(state), PLACEMENT)  # type: ignore[attr-defined]


def verbs(operations: list[Operation]) -> list[tuple[str, str]]:
    return [(str(o.verb), o.name) for o in operations]


def test_create_pod_manifest_carries_identity_readiness_and_node() -> None:
    (operation,) = ops(CreatePod("web-b", WEB, ready=False, node="node-2", http_port=9090))
    assert operation.verb is Verb.CREATE_POD
    body = operation.body
    assert body is not None
    labels = body["metadata"]["labels"]
    assert labels["app"] == "web" and labels[MANAGED_BY_KEY] == MANAGED_BY
    assert labels[INCARNATION_LABEL] == "u2"
    spec = body["spec"]
    assert spec["hostname"] == "web-b--u2" and spec["nodeName"] == "w2"
    container = spec["containers"][0]
    assert container["image"].startswith("registry.k8s.io/e2e-test-images/agnhost:")
    script = container["command"][-1]
    assert "netexec --http-port=9090" in script and "--delay-shutdown=" in script
    assert "touch /tmp/ready" not in script  # created not ready
    assert container["readinessProbe"]["exec"]["command"] == ["cat", "/tmp/ready"]
    assert container["ports"] == [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]


def test_ready_pod_starts_with_its_readiness_file() -> None:
    (operation,) = ops(CreatePod("web-b", WEB))
    assert operation.body is not None
    assert operation.body["spec"]["containers"][0]["command"][-1].startswith("touch /tmp/ready && ")


def test_create_service_manifest() -> None:
    event = CreateService(
        "api",
        WEB,
        target_port=8080,
        session_affinity=Affinity.CLIENT_IP,
        affinity_timeout_s=60,
        publish_not_ready_addresses=True,
        internal_traffic_policy=TrafficPolicy.LOCAL,
    )
    (operation,) = ops(event)
    assert operation.body is not None
    spec = operation.body["spec"]
    assert spec["selector"] == {"app": "web"} and spec["type"] == "ClusterIP"
    assert spec["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
    assert spec["sessionAffinity"] == "ClientIP"
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 60}}
    assert spec["publishNotReadyAddresses"] is True and spec["internalTrafficPolicy"] == "Local"
    assert "clusterIP" not in spec  # the API server allocates it


def test_selector_patch_removes_dropped_keys_with_null() -> None:
    before = [CreateService("web", labels_of({"app": "web", "tier": "a"}))]
    (operation,) = ops(SetSelector("web", labels_of({"app": "api"})), before)
    assert operation.verb is Verb.PATCH_SERVICE
    assert operation.body == {"spec": {"selector": {"tier": None, "app": "api"}}}


def test_empty_selector_becomes_a_selector_nothing_matches() -> None:
    (operation,) = ops(SetSelector("web", ()))
    assert operation.body == {"spec": {"selector": {"app": None, **NOTHING_SELECTOR}}}


def test_service_field_patches() -> None:
    affinity = ops(SetAffinity("web", Affinity.CLIENT_IP, 30))[0].body
    assert affinity == {
        "spec": {
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}},
        }
    }
    after = [*BASE, SetAffinity("web", Affinity.CLIENT_IP, 30)]
    back = ops(SetAffinity("web", Affinity.NONE), after)[0].body
    assert back == {"spec": {"sessionAffinity": "None", "sessionAffinityConfig": None}}
    assert ops(SetPublishNotReady("web", True))[0].body == {
        "spec": {"publishNotReadyAddresses": True}
    }
    assert ops(SetTrafficPolicy("web", TrafficPolicy.LOCAL))[0].body == {
        "spec": {"internalTrafficPolicy": "Local"}
    }
    assert verbs(ops(DeleteService("web"))) == [("delete-service", "web")]


def test_graceful_delete_kill_and_exit() -> None:
    (graceful,) = ops(DeletePod("web-a", 12.5))
    assert (graceful.verb, graceful.grace_s) == (Verb.DELETE_POD, MIN_API_GRACE_S)
    (long,) = ops(DeletePod("web-a", 7200.5))
    assert long.grace_s == 7201  # the model's grace when it is longer
    (kill,) = ops(DeletePod("web-a", 0))
    assert (kill.verb, kill.grace_s) == (Verb.REMOVE_POD, 0)
    (exit_,) = ops(PodExit("web-a"), [*BASE, DeletePod("web-a", 30)])
    assert (exit_.verb, exit_.grace_s) == (Verb.REMOVE_POD, 0)


def test_grace_period_running_out_removes_the_pod() -> None:
    assert verbs(ops(Wait(31), [*BASE, DeletePod("web-a", 30)])) == [("remove-pod", "web-a")]
    assert ops(Wait(10), [*BASE, DeletePod("web-a", 30)]) == []


def test_restart_is_delete_then_create_under_the_same_name() -> None:
    operations = ops(RestartPod("web-a"))
    assert verbs(operations) == [("remove-pod", "web-a"), ("create-pod", "web-a")]
    created = operations[1].body
    assert created is not None and created["metadata"]["labels"][INCARNATION_LABEL] == "u2"
    assert created["spec"]["hostname"] == "web-a--u2"


def test_relabel_readiness_and_eviction() -> None:
    (relabel,) = ops(SetLabel("web-a", "app", None))
    assert relabel.body == {"metadata": {"labels": {"app": None}}}
    (flip,) = ops(SetReady("web-a", False))
    assert (flip.verb, flip.ready) == (Verb.SET_READY, False)
    (evict,) = ops(EvictPod("web-a"))
    assert evict.verb is Verb.EVICT_POD
    assert evict.body is not None and evict.body["status"]["phase"] == "Failed"
    assert evict.body["status"]["reason"] == "Evicted"


def test_scale_creates_and_gracefully_deletes_group_pods() -> None:
    up = ops(Scale("db", 2), [])
    assert verbs(up) == [("create-pod", "db-0"), ("create-pod", "db-1")]
    down = ops(Scale("db", 1), [Scale("db", 2)])
    assert [(str(o.verb), o.name, o.grace_s) for o in down] == [
        ("delete-pod", "db-1", MIN_API_GRACE_S)
    ]


def test_services_go_first_and_come_last() -> None:
    state = apply_all(BASE)
    after = apply_all(
        [
            DeleteService("web"),
            DeletePod("web-a", 0),
            CreateService("api", WEB),
            CreatePod("web-b", WEB),
        ],
        state,
    )
    assert verbs(plan(state, after, PLACEMENT)) == [
        ("delete-service", "web"),
        ("remove-pod", "web-a"),
        ("create-pod", "web-b"),
        ("create-service", "api"),
    ]


def test_hostnames_round_trip_and_are_bounded() -> None:
    assert parse_hostname(pod_hostname("web-a", "u12")) == ("web-a", "u12")
    assert parse_hostname("garbage") is None
    with pytest.raises(UsageError, match="too long"):
        pod_hostname("p" * 60, "u1")


def test_unmapped_node_is_a_usage_error() -> None:
    placement = Placement("ns", "hk00001", nodes={"node-1": "w1"})
    state = apply_all([])
    after = CreatePod("x", WEB, node="node-2").apply(state)
    with pytest.raises(UsageError, match="node-2"):
        plan(state, after, placement)


def test_several_ports_are_served_created_and_patched() -> None:
    """Issue 12: a multi-port pod serves `admin` too, and a port change patches the list."""
    (pod,) = ops(CreateMultiPortPod("web-b", WEB, http_port=8081, admin_port=9091))
    assert pod.body is not None
    script = pod.body["spec"]["containers"][0]["command"][-1]
    assert "netexec --http-port=9091 --udp-port=-1 & " in script
    assert "exec /agnhost netexec --http-port=8081" in script
    before = [CreateMultiPortService("web", WEB, port_count=3)]
    (created,) = ops(before[0], [])
    assert created.body is not None
    assert [p["name"] for p in created.body["spec"]["ports"]] == ["http", "admin", "alt"]
    (patched,) = ops(SetServicePort("web", "admin", 82, "http"), before)
    assert patched.verb is Verb.PATCH_SERVICE and patched.body is not None
    assert patched.body["spec"]["ports"][1] == {
        "name": "admin",
        "port": 82,
        "targetPort": "http",
        "protocol": "TCP",
    }
