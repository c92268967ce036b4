"""Nodes without namespaces: the model's per-node pod ranges and zones, the event space's node
draw, and `--nodes` on the command line (bad input, failure files, replays). Nothing here
builds a namespace."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

import pytest

from harness.checks.nodes import NodeSample, check_every_node
from harness.cli import main, run_context, target_options
from harness.errors import InvalidEvent, UsageError
from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    RestartPod,
    RestartProxy,
    Scale,
    SetTrafficPolicy,
    check_nodes,
    save_sequence,
)
from harness.failures import RunContext, _check_run
from harness.model.endpoints import expect
from harness.model.objects import ALL_NODES, ZONES, Backend, TrafficPolicy, labels_of, run_nodes
from harness.model.state import POD_CIDR, ClusterState, node_pod_cidr
from harness.mutation import _replay_options, nodes_to_catch
from harness.nodeclients import changed_services
from harness.registry import TargetOptions
from harness.strategies import space_nodes
from harness.targets.local import LocalTarget
from harness.traffic import ErrorKind, Outcome

WEB = labels_of({"app": "web"})


def test_each_node_allocates_from_its_own_range_and_node_1_keeps_todays_addresses() -> None:
    state = ClusterState()
    for event in (
        CreatePod("a", WEB),
        CreatePod("b", WEB, node="node-2"),
        CreatePod("c", WEB),
        Scale("g", 2, node="node-16"),
    ):
        state = event.apply(state)
    ips = {name: pod.ip for name, pod in state.pods.items()}
    assert ips == {
        "a": "10.244.0.10",  # as before nodes had ranges
        "c": "10.244.0.11",
        "b": "10.244.16.10",
        "g-0": "10.244.240.10",
        "g-1": "10.244.240.11",
    }
    ranges = [node_pod_cidr(node) for node in ALL_NODES]
    assert all(r.subnet_of(POD_CIDR) and r.prefixlen == 20 for r in ranges)
    assert len({r.network_address for r in ranges}) == 16
    with pytest.raises(ValueError, match="node-17"):
        node_pod_cidr("node-17")


def test_a_restarted_pod_that_needs_a_new_address_gets_one_of_its_own_node() -> None:
    state = CreatePod("b", WEB, node="node-3").apply(ClusterState())
    state = RestartPod("b", new_ip=True).apply(state)
    address = state.pods["b"].ip
    assert address is not None
    assert ipaddress.IPv4Address(address) in node_pod_cidr("node-3")


def test_zones_cycle_over_the_nodes_and_events_take_sixteen_nodes() -> None:
    assert [ZONES[n] for n in ALL_NODES[:4]] == ["zone-a", "zone-b", "zone-c", "zone-a"]
    assert run_nodes(1) == run_nodes(2) == ("node-1", "node-2")
    assert run_nodes(3) == ("node-1", "node-2", "node-3")
    with pytest.raises(InvalidEvent, match=r"unknown node 'node-17'.*node-1 to node-16"):
        CreatePod("a", WEB, node="node-17").apply(ClusterState())


def test_the_event_space_draws_node_1_three_times_as_often_as_each_other_node() -> None:
    assert space_nodes(("node-1", "node-2")) == ("node-1",) * 3 + ("node-2",)
    assert space_nodes(run_nodes(3)) == ("node-1",) * 3 + ("node-2", "node-3")


def test_a_sequence_naming_a_node_the_target_lacks_is_one_line() -> None:
    events = [CreatePod("a", WEB), CreatePod("b", WEB, node="node-3")]
    check_nodes(events, None)
    check_nodes(events, run_nodes(3))
    with pytest.raises(UsageError, match=r"event 2 \(create-pod\): .*no node 'node-3'"):
        check_nodes(events, run_nodes(2))


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["run", "--nodes", "17"], "a local cluster has 1 to 16 nodes, got 17"),
        (["run", "--nodes", "0"], "a local cluster has 1 to 16 nodes, got 0"),
        (["run", "--nodes", "two"], "expected a whole number, got 'two'"),
        (["run", "--target", "model", "--nodes", "2"], "--nodes is for local targets"),
        (["run", "--target", "local:loopback", "--nodes", "2"], "local:loopback has one node"),
    ],
)
def test_bad_node_counts_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert complaint in err and len(err.strip().splitlines()) == 1, err


def test_replaying_a_sequence_on_too_few_nodes_is_one_line_before_anything_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "seq.json"
    save_sequence(path, [CreatePod("a", WEB), CreatePod("b", WEB, node="node-3")])
    code = main(["replay", str(path), "--target", "local:iptables", "--nodes", "2"])
    out, err = capsys.readouterr()
    assert code == 2 and "no node 'node-3'" in err and len(err.strip().splitlines()) == 1
    assert "replaying" not in out  # refused before the target was opened


def test_failure_files_record_the_node_count_and_a_replay_uses_it() -> None:
    recorded = run_context("local:iptables", 7, TargetOptions(nodes=3))
    assert recorded.options["nodes"] == 3 and recorded.flags() == ["--nodes", "3"]
    _check_run(recorded.to_json(), "failure.run", required=True)  # a valid failure file
    with pytest.raises(UsageError, match=r"options\.nodes must be a whole number of nodes"):
        _check_run({"target": "local", "options": {"nodes": 17}}, "failure.run", required=True)
    args = argparse.Namespace(nodes=None, kind_cluster=None, keep_cluster=False)
    assert target_options(args, "local:iptables", 7, recorded).nodes == 3
    older = RunContext("local:iptables", 7)  # saved before local clusters had nodes
    assert target_options(args, "local:iptables", 7, older).nodes == 1
    assert target_options(args, "local:iptables", 7).nodes == 2  # `harness run`'s default
    assert LocalTarget.from_spec(None, TargetOptions()).nodes == 1  # benchmarks: today's cost


def _sample(node: str, state: ClusterState, *seen: Backend | ErrorKind) -> NodeSample:
    outcomes = tuple(
        Outcome(s, None, 1.0, 0) if isinstance(s, Backend) else Outcome(None, s, 1.0, 0)
        for s in seen
    )
    return NodeSample("web", node, expect(state, "web", "http", node), outcomes)


def test_every_node_is_judged_by_its_own_expectation() -> None:
    state = ClusterState()
    for event in (
        CreateService("web", WEB, internal_traffic_policy=TrafficPolicy.LOCAL),
        CreatePod("a", WEB, node="node-2"),
    ):
        state = event.apply(state)
    a = Backend("a", state.pods["a"].uid)
    right = [
        _sample("node-1", state, ErrorKind.TIMEOUT, ErrorKind.TIMEOUT),  # DROP: only elsewhere
        _sample("node-2", state, a, a),
        _sample("node-3", state, ErrorKind.TIMEOUT),
    ]
    verdict = check_every_node(right)
    assert verdict is not None and verdict.holds, verdict
    assert [s["expected"] for s in verdict.evidence["samples"]] == ["drop", "connect", "drop"]
    # a node-2 proxy that thinks it is node-1 drops what it must forward
    wrong = check_every_node([right[0], _sample("node-2", state, ErrorKind.TIMEOUT, a)])
    assert wrong is not None and not wrong.holds
    assert "from node-2's host network: 1 of 2" in wrong.message and "connect" in wrong.message
    # and a node that forwards what it must drop, or refuses it, is wrong too
    for seen in (a, ErrorKind.REFUSED):
        forwarded = check_every_node([_sample("node-3", state, seen)])
        assert forwarded is not None and not forwarded.holds
    empty = DeletePod("a", 0.0).apply(state)
    refused = check_every_node([_sample("node-2", empty, ErrorKind.REFUSED)])
    assert refused is not None and refused.holds  # no endpoint anywhere: REJECT
    assert check_every_node([]) is None


def test_changed_services_are_those_any_node_sees_differently() -> None:
    db = labels_of({"app": "db"})
    state = CreateService("db", db).apply(CreateService("web", WEB).apply(ClusterState()))
    nodes = ("node-1", "node-2")
    local = SetTrafficPolicy("web", TrafficPolicy.LOCAL)
    assert changed_services(local, state, local.apply(state), nodes) == ["web"]
    pod = CreatePod("a", db, node="node-2")
    assert changed_services(pod, state, pod.apply(state), nodes) == ["db"]
    assert changed_services(RestartProxy(), state, state, nodes) == ["db", "web"]


def test_mutants_are_searched_on_the_nodes_they_need() -> None:
    assert nodes_to_catch("local:mutant-iptables-wrong-node") == 2  # wrong only off node-1
    assert nodes_to_catch("local:mutant-iptables-drop-empty") == 1  # today's cost
    assert nodes_to_catch("mutant:first-endpoint") == nodes_to_catch("local:nosuch") == 1
    # and its saved counterexample replays on as many
    made = LocalTarget.from_spec("mutant-iptables-wrong-node", TargetOptions(nodes=2))
    assert _replay_options(made, 1.0) == {"deadline": 1.0, "nodes": 2}
    assert _replay_options(object(), None) == {}
