""".github/workflows/nightly.yml, read as data: on kind it builds the harness's image from
deploy/Containerfile, loads it into kind, runs deploy/sonobuoy-plugin.yaml with Sonobuoy and
checks the retrieved results are in Sonobuoy's layout, runs the scale benchmark at the issue's
size, and uploads the reports; names agree with the deploy files, and every long step is bounded
by a timeout. (Nothing here can run the workflow: no container engine, no cluster.)"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.files import PLUGIN, RBAC, ROOT, image_reference, yaml_documents

WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
LONG_RUNNING = re.compile(
    r"docker (build|pull)|kind load|sonobuoy (run|retrieve|delete)|pytest|tox |harness (run|clean)"
)


def workflow() -> dict[str, Any]:
    (document,) = yaml_documents(WORKFLOW)
    return document


def job() -> dict[str, Any]:
    jobs = workflow()["jobs"]
    assert "kind" in jobs, f"{WORKFLOW}: no `kind` job"
    return dict(jobs["kind"])


def steps() -> list[dict[str, Any]]:
    return list(job()["steps"])


def run_text(step: dict[str, Any]) -> str:
    return " ".join(str(step.get("run", "")).split())


def index_of(pattern: str) -> int:
    """The index of the only step whose command matches `pattern`."""
    found = [i for i, step in enumerate(steps()) if re.search(pattern, run_text(step))]
    assert len(found) == 1, f"{WORKFLOW}: {len(found)} steps run {pattern!r}, expected one"
    return found[0]


def env() -> dict[str, str]:
    return {key: str(value) for key, value in job().get("env", {}).items()}


def plugin() -> dict[str, Any]:
    (document,) = yaml_documents(PLUGIN)
    return document


def test_it_runs_nightly_and_on_demand_on_both_proxy_modes() -> None:
    document = workflow()
    triggers = document.get("on", document.get(True))  # YAML 1.1 reads `on` as true
    assert {"schedule", "workflow_dispatch"} <= set(triggers)
    assert job()["strategy"]["matrix"]["proxy-mode"] == ["iptables", "nftables"]


def test_the_image_is_built_from_the_containerfile_under_the_plugins_name() -> None:
    image = env()["HARNESS_IMAGE"]
    assert image == image_reference() == plugin()["spec"]["image"]
    build = run_text(steps()[index_of(r"docker build")])
    assert "-f deploy/Containerfile" in build and '-t "$HARNESS_IMAGE"' in build
    load = run_text(steps()[index_of(r"kind load docker-image \"\$HARNESS_IMAGE\"")])
    assert '--name "$KIND_CLUSTER"' in load


def test_sonobuoy_runs_the_plugin_as_the_rbac_account_and_the_layout_is_checked() -> None:
    (account,) = [d for d in yaml_documents(RBAC) if d.get("kind") == "ServiceAccount"]
    assert env()["SONOBUOY_NAMESPACE"] == account["metadata"]["namespace"]
    assert plugin()["podSpec"]["serviceAccountName"] == account["metadata"]["name"]
    run = run_text(steps()[index_of(r"sonobuoy run ")])
    assert "kubectl apply -f deploy/rbac.yaml" in run
    assert "--plugin deploy/sonobuoy-plugin.yaml" in run and PLUGIN.is_file()
    assert '--namespace "$SONOBUOY_NAMESPACE"' in run and "--wait" in run
    check = steps()[index_of(r"sonobuoy retrieve")]
    name = plugin()["sonobuoy-config"]["plugin-name"]
    layout = f"plugins/{name}/results/global/"
    assert layout in str(check["run"])
    for result in ("junit.xml", "results.json"):
        assert f'"{result}"' in str(check["run"]), f"the check does not look for {result}"


def test_the_steps_come_in_order_and_the_reports_are_uploaded_always() -> None:
    all_steps = steps()
    cluster = next(i for i, s in enumerate(all_steps) if "kind-action" in str(s.get("uses")))
    order = [
        cluster,
        index_of(r"docker build"),
        index_of(r"kind load docker-image \"\$HARNESS_IMAGE\""),
        index_of(r"sonobuoy run "),
        index_of(r"sonobuoy retrieve"),
    ]
    assert order == sorted(order), order
    upload = all_steps[-1]
    assert str(upload.get("uses", "")).startswith("actions/upload-artifact@")
    assert upload.get("if") == "always()" and "reports/" in upload["with"]["path"]
    delete = all_steps[index_of(r"sonobuoy delete")]
    assert delete.get("if") == "always()"


def test_the_scale_benchmark_runs_at_the_issues_size_against_kind() -> None:
    step = steps()[index_of(r"bench/test_kube_scale.py")]
    assert (ROOT / "bench" / "test_kube_scale.py").is_file()
    assert step["env"]["HARNESS_BENCH_KUBE_PODS"] == "1000"
    assert step["env"]["HARNESS_BENCH_KUBE_SERVICES"] == "200"
    assert "HARNESS_KUBECONFIG" in step["env"]
    assert "--bench-output" in run_text(step) and "reports/" in run_text(step)


@pytest.mark.parametrize("index", range(len(steps())))
def test_every_long_step_is_bounded_by_a_timeout(index: int) -> None:
    step = steps()[index]
    bounded = "timeout-minutes" in step
    if LONG_RUNNING.search(run_text(step)) or "kind-action" in str(step.get("uses")):
        assert bounded, f"step {step.get('name')!r} runs {run_text(step)[:60]!r} with no timeout"
    if bounded:
        assert 0 < int(step["timeout-minutes"]) <= int(job()["timeout-minutes"])


def test_the_paths_the_workflow_names_exist() -> None:
    for step in steps():
        for path in re.findall(r"\b((?:deploy|bench|tests)/[\w./-]+\.\w+)", run_text(step)):
            assert (ROOT / path).exists(), f"{WORKFLOW} names {path}, which does not exist"


def test_no_step_passes_options_pytest_bench_does_not_know() -> None:
    for step in steps():
        text = run_text(step)
        if "tox -e bench" in text or "pytest bench" in text:
            assert "--target" not in text and "--kubeconfig" not in text, text


def test_what_a_step_passes_to_tox_e_bench_harness_bench_accepts() -> None:
    """`tox -e bench -- ARGS` runs `harness bench --profile quick ARGS` (tox.ini)."""
    from harness.cli import build_parser

    given = [
        t.split("tox -e bench --", 1)[1] for t in map(run_text, steps()) if "tox -e bench --" in t
    ]
    assert given, f"{WORKFLOW}: no step runs `tox -e bench -- ...`"
    for args in given:
        words = [w.strip('"') for w in args.split()]
        build_parser().parse_args(["bench", "--profile", "quick", *words])  # exits 2 if unknown


def test_the_kind_benchmarks_are_rendered_into_a_report_of_their_own() -> None:
    """The kind job's figures (locust in the cluster: kube_throughput.json) reach a report in
    its artifact, read from the directory the bench step wrote."""
    bench, report = index_of(r"tox -e bench -- --output"), index_of(r"harness report --input")
    assert bench < report
    assert '--input "reports/bench-$PROXY_MODE"' in steps()[report]["run"]
    assert '--output "reports/bench-$PROXY_MODE"' in steps()[bench]["run"]


def test_the_sctp_module_is_loaded_before_the_kube_tests_and_the_conformance_run() -> None:
    """kind's nodes share the runner's kernel: the real-cluster SCTP case and the conformance
    run's `--kube-sctp` need the sctp module there, and go without it."""
    loaded = index_of(r"sudo modprobe sctp")
    assert loaded < index_of(r"pytest -m kube tests/kube")
    conformance = index_of(r"tox -e conformance -- --target kube")
    text = run_text(steps()[conformance])
    assert loaded < conformance and "/proc/net/protocols && echo --kube-sctp" in text
    assert "$SCTP" in text.split("tox -e conformance", 1)[1]  # passed where the module is loaded


def test_the_report_job_measures_programming_cost_with_debian_13s_nft_too() -> None:
    """The nightly report's programming-cost section has the nftables proxy with the runner's
    nft and with Debian 13's (bench/debian_nft.py), fetched before the benchmarks run and
    handed to them through HARNESS_BENCH_PROGCOST_NFT; a failed fetch only warns."""
    report = list(workflow()["jobs"]["report"]["steps"])
    texts = [run_text(step) for step in report]
    fetch = next(i for i, text in enumerate(texts) if "bench/debian_nft.py" in text)
    nightly = next(i for i, text in enumerate(texts) if "tox -e nightly" in text)
    assert fetch < nightly
    assert 'HARNESS_BENCH_PROGCOST_NFT=$RUNNER_TEMP/debian-nft" >> "$GITHUB_ENV"' in texts[fetch]
    assert "::warning::" in texts[fetch] and (ROOT / "bench" / "debian_nft.py").exists()
