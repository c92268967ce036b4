"""Locust in the cluster (harness.kube.loadgen, issue 13 item 3): the pods it describes are
bounded and spread, their script really writes the figures it promises (run here with a stand-in
`locust` on PATH), and a run against the mock API server creates the master first, points the
workers at its address, reads every pod and leaves no pod behind, also when a pod cannot start.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fakecluster import USER_AGENT, FakeCluster
from mockapi import MockApiServer

from harness.clock import RealClock
from harness.errors import EnvironmentProblem
from harness.kube import loadgen
from harness.kube.api import Cluster
from harness.kube.loadgen import InClusterLocust, LocustPlan, parse_output
from harness.kube.objects import ROLE_LABEL, RUN_LABEL, Placement, namespace_manifest
from harness.kube.scope import Scope

RUN = "hk7lg01"
NS = f"svc-lb-{RUN}"
PLACEMENT = Placement(NS, RUN)
FILES = {"locustfile.py": "print('it\\'s \"quoted\" $HOME')\n", "helper.py": "X = 1\n"}


def plan(**changes: Any) -> LocustPlan:
    settings: dict[str, Any] = dict(
        files=FILES, locustfile="locustfile.py", url="http://10.96.0.10:80", users=10,
        workers=2, seconds=5, env={"HARNESS_LOCUST_PATH": "/hostname"},
    )  # fmt: skip
    return LocustPlan(**{**settings, **changes})


def script_of(manifest: dict[str, Any]) -> str:
    command = manifest["spec"]["containers"][0]["command"]
    assert command[:2] == ["sh", "-c"]
    return str(command[2])


def test_every_pod_is_bounded_labelled_and_ready_only_when_its_figures_are_written() -> None:
    master = loadgen.master_manifest("m", PLACEMENT, plan(), "/tmp/harness-figures/stats")
    worker = loadgen.worker_manifest("w0", PLACEMENT, plan(), "10.244.1.7", "/x/tally-*.json")
    for pod in (master, worker):
        spec = pod["spec"]
        assert spec["activeDeadlineSeconds"] == plan().deadline_s
        assert plan().deadline_s == loadgen.PULL_BUDGET_S + plan().run_s + loadgen.READ_WINDOW_S
        assert spec["restartPolicy"] == "Never"
        probe = spec["containers"][0]["readinessProbe"]["exec"]["command"]
        assert probe == ["test", "-e", loadgen.DONE]
        labels = pod["metadata"]["labels"]
        assert labels[RUN_LABEL] == RUN and labels[ROLE_LABEL] == "locust"
        assert pod["metadata"]["namespace"] == NS
        env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
        assert sorted(v for k, v in env.items() if k.startswith("HARNESS_FILE_")) == sorted(
            FILES.values()
        )
        assert env["HARNESS_LOCUST_PATH"] == "/hostname"
        subprocess.run(["sh", "-n", "-c", script_of(pod)], check=True)  # the shell parses it
    assert "--expect-workers 2" in script_of(master) and "--headless" in script_of(master)
    assert f"-t 5s -H {plan().url}" in script_of(master)
    assert "--master-host 10.244.1.7" in script_of(worker)
    spread = worker["spec"]["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert "topologySpreadConstraints" not in master["spec"]


def test_a_plan_refuses_what_it_cannot_run() -> None:
    with pytest.raises(ValueError, match="not among the files"):
        plan(locustfile="other.py")
    with pytest.raises(ValueError, match="workers must be 1 to 64"):
        plan(workers=0)
    with pytest.raises(ValueError, match="at least 1"):
        plan(seconds=0)


def test_the_script_writes_the_files_runs_locust_and_reports_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pod's script, run here with its paths under tmp_path, its read window 0 and a
    stand-in `locust` that writes a statistics file: the files arrive byte for byte, the output
    carries the figures file on one line, the exit code and the log's tail, and DONE exists."""
    for name in ("FILES_DIR", "OUTPUT", "DONE", "FIGURES"):
        monkeypatch.setattr(loadgen, name, str(tmp_path / name.lower()))
    monkeypatch.setattr(loadgen, "READ_WINDOW_S", 0)
    stats = str(tmp_path / "figures" / "stats")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "locust"
    fake.write_text(
        "#!/bin/sh\n"
        'while [ $# -gt 0 ]; do [ "$1" = --json-file ] && out="$2"; shift; done\n'
        'printf \'[{"num_requests": 3,\\n "name": "/"}]\\n\' > "$out.json"\n'
        "echo finished; exit 1\n"
    )
    fake.chmod(0o755)
    manifest = loadgen.master_manifest("m", PLACEMENT, plan(), stats)
    env = {e["name"]: e["value"] for e in manifest["spec"]["containers"][0]["env"]}
    env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    subprocess.run(["sh", "-c", script_of(manifest)], env=env, check=True, timeout=30)
    for name, text in FILES.items():
        assert (tmp_path / "files_dir" / name).read_text() == text
    assert (tmp_path / "done").exists()
    output = parse_output((tmp_path / "output").read_text())
    assert [json.loads(f) for f in output.files] == [[{"num_requests": 3, "name": "/"}]]
    assert output.exit_code == 1 and output.log_tail == ("finished",)


def test_parse_output_ignores_what_it_does_not_know() -> None:
    text = "HARNESS-OUTPUT {}\nnoise\nHARNESS-EXIT x\n# tail\n"
    assert parse_output(text) == loadgen.PodOutput(("{}",), None, ("tail",))


@pytest.fixture
def scope(mock_api: MockApiServer, cluster: Cluster) -> Scope:
    cluster.core.create_namespace(namespace_manifest(NS, RUN))
    return Scope(cluster, PLACEMENT, (), RealClock())


def locust_pods(cluster: Cluster) -> list[str]:
    listing = cluster.core.list_namespaced_pod(NS, label_selector=f"{ROLE_LABEL}=locust")
    return [pod.metadata.name for pod in listing.items]


def test_a_run_points_the_workers_at_the_master_reads_every_pod_and_removes_them(
    mock_api: MockApiServer, cluster: Cluster, scope: Scope
) -> None:
    with FakeCluster(mock_api.url) as fake:  # runs the pods: an address, then Ready
        fake.exec_output = 'HARNESS-OUTPUT {"a": 1}\nHARNESS-EXIT 0\n'
        outputs = InClusterLocust(scope, fake.exec, RealClock(), 10.0).run(plan(workers=3))
    assert outputs.master.files == ('{"a": 1}',) and len(outputs.workers) == 3
    assert {pod for pod, argv in fake.execs} == {
        f"{RUN}-locust-1-m",
        *(f"{RUN}-locust-1-w{i}" for i in range(3)),
    }
    assert all(argv == ["cat", loadgen.OUTPUT] for _, argv in fake.execs)
    created = [body for method, path, body in _posts(mock_api) if "/pods" in path]
    assert created[0]["metadata"]["name"] == f"{RUN}-locust-1-m"  # the master first
    assert all("--master-host 10.244." in script_of(body) for body in created[1:])
    assert locust_pods(cluster) == []  # every pod deleted at the end


def test_a_pod_that_cannot_start_is_one_line_and_nothing_is_left(
    mock_api: MockApiServer, cluster: Cluster, scope: Scope
) -> None:
    with FakeCluster(mock_api.url, waiting_reason="ImagePullBackOff") as fake:
        runner = InClusterLocust(scope, fake.exec, RealClock(), 5.0)
        with pytest.raises(EnvironmentProblem, match=r"cannot start: .*ImagePullBackOff"):
            runner.run(plan())
    assert locust_pods(cluster) == []


def _posts(mock_api: MockApiServer) -> list[tuple[str, str, Any]]:
    return [
        (r.method.name, r.url.path, r.data)
        for r in mock_api.requests()
        if r.method.name == "POST" and r.headers.get("User-Agent") != USER_AGENT
    ]
