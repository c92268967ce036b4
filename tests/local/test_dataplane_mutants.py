"""Every mutant of the local cluster is caught by the `quick` profile with a short, confirmed
counterexample: the data-plane mutant proxies (`local:mutant-...`) and the control-plane mutants
plugged in through the targets' plug-in point (`mutant-controller:NAME`).

The programming deadline is 1 s here instead of the local cluster's 5 s: the correct proxies
program in milliseconds (p99 about 0.1 s on this machine), and every replay of a broken data
plane while its counterexample is shrunk waits out one deadline, so this keeps the test short.
The mutation report (`harness report --mutants`) runs them with the default deadline. They run
in a session of their own (`tox -e mutants`, which CI runs after the default test run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.mutation import catch, confirmed, local_mutant_specs
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, pytest.mark.serial, needs_root]

MAX_COUNTEREXAMPLE_EVENTS = 8
DEADLINE_S = 1.0
CAUGHT_CHEAPER = {
    # the quick profile catches it too (seed 11: 8 examples, a 2-event counterexample, about
    # 22 s with shrinking and confirmation), more than this file's share of CI time allows
    "local:mutant-iptables-ignores-opt-out": "tests/proxies/test_mutants.py (rule oracle)",
    # the quick profile catches it too (seed 11: 7 examples, a 3-event counterexample, 10 to 30 s
    # with shrinking and confirmation); a fixed sequence catches it at its unready step in 0.6 s
    "local:mutant-iptables-keeps-udp-conntrack": "tests/local/test_udp.py",
    # the quick profile catches it too (seed 11: about 75 s under load, through a Service deleted
    # and created again with its name and VIP); a fixed sequence catches it at its stale
    # snapshot in about 6 s
    "local:mutant-iptables-tombstones": "tests/local/test_stale_snapshot.py",
    # the quick profile catches it too on 2 nodes (seed 11: 6 examples, a 2-event
    # counterexample, `every-node`, 27.6 s under load); a fixed sequence catches it in 2.7 s
    "local:mutant-iptables-wrong-node": "tests/local/test_nodes.py",
    # the quick profile catches it too (seed 11, through an aimed unobserved-changes step: about
    # 180 s wall on this 2-core machine while six other test runs shared it); a fixed sequence
    # catches it at its unobserved change in about 7 s
    "local:mutant-iptables-immutable-vip": "tests/local/test_unobserved.py",
    # the quick profile did not catch it (seed 11: 44 examples in 180 s): it needs ClientIP
    # affinity, 2+ endpoints and a restart between two samples of the same clients; a fixed
    # sequence catches it at its restart in about 1.2 s
    "local:mutant-iptables-clears-rules-on-restart": "tests/local/test_restart_keeps_rules.py",
    # the quick profile catches it too (seed 11: 9 examples, a 2-event counterexample, about
    # 33 s with shrinking and confirmation); a fixed sequence catches it at the step that
    # populates a dual-protocol Service in about 4 s
    "local:mutant-iptables-port-ignores-protocol": "tests/local/test_dual_protocol.py",
    # wrong only for SCTP Services, which the search draws one in 12 (and only where the kernel
    # tracks SCTP); a fixed sequence catches it at its first step with endpoints in about 2 s,
    # the rule oracle at once (tests/proxies/test_mutants.py)
    "local:mutant-iptables-sctp-as-tcp": "tests/local/test_sctp.py",
    # wrong only when a pod sends an out-of-window segment on a held connection to it: the quick
    # profile catches it too (seed 5, 30 examples of 10 steps: a 3-event counterexample, 118 s
    # under load with shrinking and confirmation; seed 11 had not in its first 5 examples); a
    # fixed sequence catches it at its `out-of-window` step in about 2 s, the rule oracle at once
    "local:mutant-iptables-keeps-invalid": "tests/local/test_out_of_window.py",
    # wrong only from outside under externalTrafficPolicy Local: the quick profile catches
    # nodeport-ignores-local too on 2 nodes (seed 11: 7 examples, a 4-event counterexample,
    # `node-port`, 32 s under load with shrinking and confirmation; its rejects-no-local twin
    # was not measured); a fixed sequence catches each at its policy step in about 2 s, the
    # node-port rule oracle at once (tests/proxies/test_node_port_rules.py)
    "local:mutant-iptables-nodeport-ignores-local": "tests/local/test_node_port.py",
    "local:mutant-iptables-nodeport-rejects-no-local": "tests/local/test_node_port.py",
    # wrong only for a UDP flow whose endpoint went while no proxy ran: the quick profile
    # catches it too (seed 11: 3 examples, a 3-event counterexample, 7.6 s with shrinking and
    # confirmation, through a restart during which an endpoint was made unready); a fixed
    # sequence catches it at that restart in about 0.7 s of the default run instead
    "local:mutant-iptables-forgets-while-down": "tests/local/test_restart_while_down.py",
    # wrong only for a UDP flow from outside that keeps its 5-tuple to a node port while its
    # endpoint is removed (kubernetes#59368), which needs a UDP NodePort Service, 2 nodes and
    # a held flow from outside; a fixed sequence catches it at its unready step in about 1 s
    # (its entries in the kernel: tests/proxies/test_node_port_conntrack.py, 0.1 s)
    "local:mutant-iptables-keeps-nodeport-udp-conntrack": "tests/local/test_udp_node_port.py",
    # wrong only from outside at an ingress IP, which needs a LoadBalancer Service with endpoints
    # and 2 nodes; a fixed sequence catches it at its LoadBalancer step in about 2 s, the
    # ingress-IP rule oracle at once (tests/proxies/test_load_balancer_rules.py)
    "local:mutant-iptables-lb-ip-unprogrammed": "tests/local/test_load_balancer.py",
    # wrong only from outside at an externalIP, which needs a Service with externalIPs and
    # endpoints and 2 nodes; a fixed sequence catches it at its externalIPs step, the ingress
    # rule oracle at once (tests/proxies/test_external_ip_rules.py)
    "local:mutant-nftables-external-ip-unprogrammed": "tests/local/test_external_ips.py",
    # wrong only at a node whose local endpoints all terminate under a LoadBalancer with
    # externalTrafficPolicy Local: the quick profile catches it too on 2 nodes (seed 11: 6
    # examples, a 5-event counterexample, `node-port` part `health-check-node-port`, 43 s
    # under load with shrinking and confirmation); a fixed sequence catches it at that step in
    # about 2 s
    "local:mutant-iptables-health-counts-terminating": "tests/local/test_health_check.py",
    # wrong only under trafficDistribution with ready endpoints in two zones: the quick profile
    # catches it too (seed 11: 15 examples, a 4-event counterexample, `programming-latency`,
    # 60 s under load with shrinking and confirmation); a fixed sequence catches it at its
    # distribution step in about 3 s, the rule oracle at once (tests/proxies/test_mutants.py)
    "local:mutant-iptables-ignores-topology": "tests/local/test_topology.py",
}


@pytest.mark.parametrize("spec", [s for s in local_mutant_specs() if s not in CAUGHT_CHEAPER])
def test_local_mutant_is_caught(spec: str, tmp_path: Path) -> None:
    result = catch(spec, seed=11, failures=tmp_path, deadline_s=DEADLINE_S)
    assert result["caught"], f"{spec} passed the quick profile: {result}"
    assert 1 <= int(result["counterexample_events"]) <= MAX_COUNTEREXAMPLE_EVENTS, result
    assert confirmed(result["reproduced"]), result
    assert list(tmp_path.glob("*.json")), "the shrunk counterexample was not saved"
