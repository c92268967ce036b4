"""deploy/sonobuoy-plugin.yaml: Sonobuoy's plugin schema, its ServiceAccount bound by
deploy/rbac.yaml, the image the build file makes, and the pod's script run for real here with a
stand-in `harness` (no cluster): whatever the exit code, the results land in Sonobuoy's layout and
the `done` file names their tarball."""

from __future__ import annotations

import os
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.cli import build_parser
from harness.profiles import PROFILES
from tests.deploy.files import (
    KUBE_DOC,
    PLUGIN,
    RBAC,
    image_reference,
    stages,
    yaml_documents,
)

RESULTS_DIR = "/tmp/sonobuoy/results"
FAKE_HARNESS = """#!/bin/sh
printf '%s\\n' "$@" > "$ARGV_FILE"
echo "fake harness: status $FAKE_STATUS"
if [ "$FAKE_STATUS" -le 1 ]; then
  while [ $# -gt 0 ]; do
    case "$1" in
      --junit) echo '<testsuite name="p" tests="1"><testcase name="x"/></testsuite>' > "$2" ;;
      --results) echo '{"exit_code": '"$FAKE_STATUS"'}' > "$2" ;;
      --failures-dir) mkdir -p "$2" ;;
    esac
    shift
  done
fi
exit "$FAKE_STATUS"
"""


def plugin() -> dict[str, Any]:
    (document,) = yaml_documents(PLUGIN)
    return document


def rbac() -> list[dict[str, Any]]:
    return yaml_documents(RBAC)


def test_the_sonobuoy_config_is_a_junit_job() -> None:
    config = plugin()["sonobuoy-config"]
    assert config["driver"] == "Job"
    assert config["plugin-name"] == "svc-lb-harness"
    assert config["result-format"] == "junit"
    spec = plugin()["spec"]
    assert spec["name"] and spec["image"] == image_reference()
    assert {"mountPath": RESULTS_DIR, "name": "results"} in spec["volumeMounts"]


def test_the_container_runs_as_the_images_unprivileged_user() -> None:
    (user,) = [i.argument for i in stages()[-1] if i.keyword == "USER"]
    context = plugin()["spec"]["securityContext"]
    assert context["runAsUser"] == int(user.split(":")[0])
    assert context["runAsNonRoot"] is True
    assert context["allowPrivilegeEscalation"] is False


def test_the_service_account_is_the_one_rbac_yaml_binds_to_both_roles() -> None:
    account = plugin()["podSpec"]["serviceAccountName"]
    (namespace,) = [
        doc["metadata"]["namespace"]
        for doc in rbac()
        if doc["kind"] == "ServiceAccount" and doc["metadata"]["name"] == account
    ]
    roles = {doc["metadata"]["name"] for doc in rbac() if doc["kind"] == "ClusterRole"}
    bound = {
        doc["roleRef"]["name"]
        for doc in rbac()
        if doc["kind"] == "ClusterRoleBinding"
        and {"kind": "ServiceAccount", "name": account, "namespace": namespace} in doc["subjects"]
    }
    assert roles and bound == roles
    # a pod runs only as an account of its own namespace: Sonobuoy must run in that one
    command = f"sonobuoy run --namespace {namespace} --skip-preflight=existingnamespace"
    assert command in PLUGIN.read_text(encoding="utf-8")
    assert command in KUBE_DOC.read_text(encoding="utf-8")


def test_the_docs_build_and_run_the_same_image() -> None:
    doc = KUBE_DOC.read_text(encoding="utf-8")
    assert f"docker build -f deploy/Containerfile -t {image_reference()} ." in doc
    assert f"kind load docker-image {image_reference()}" in doc
    assert "--plugin deploy/sonobuoy-plugin.yaml" in doc


def run_pod_script(tmp_path: Path, status: int) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The plugin's command, run by /bin/sh with a stand-in `harness` exiting `status`."""
    spec = plugin()["spec"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "harness"
    fake.write_text(FAKE_HARNESS, encoding="utf-8")
    fake.chmod(0o755)
    results = tmp_path / "results"
    environment = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SONOBUOY_RESULTS_DIR": str(results),
        "ARGV_FILE": str(tmp_path / "argv"),
        "FAKE_STATUS": str(status),
        "TMPDIR": str(tmp_path),
    }
    finished = subprocess.run(
        [*spec["command"], *spec["args"]],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return results, finished


@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_the_done_file_names_a_tarball_of_the_results_whatever_the_exit_code(
    tmp_path: Path, status: int
) -> None:
    results, finished = run_pod_script(tmp_path, status)
    assert finished.returncode == 0, finished.stderr
    assert f"fake harness: status {status}" in finished.stdout  # the log reaches `kubectl logs`
    tarball = Path((results / "done").read_text(encoding="utf-8").strip())
    assert tarball == results / "results.tar.gz"
    with tarfile.open(tarball) as archive:
        names = {Path(name).as_posix().removeprefix("./") for name in archive.getnames()}
        exit_code = archive.extractfile("./exit-code")
        assert exit_code is not None and exit_code.read().decode().strip() == str(status)
        junit = archive.extractfile("./junit.xml")
        assert junit is not None
        suite = ET.fromstring(junit.read())
    assert {"junit.xml", "harness.log", "exit-code"} <= names
    assert "done" not in names and "results.tar.gz" not in names
    if status <= 1:
        assert {"results.json", "failures"} <= names
        assert suite.find("testcase") is not None and suite.find(".//error") is None
    else:  # no results from the harness: the JUnit says it errored, never a silent pass
        error = suite.find("testcase/error")
        assert error is not None and f"status {status}" in error.attrib["message"]


def test_the_harness_command_is_a_quick_kube_run_writing_into_the_results_dir(
    tmp_path: Path,
) -> None:
    results, _ = run_pod_script(tmp_path, 0)
    argv = (tmp_path / "argv").read_text(encoding="utf-8").splitlines()
    args = build_parser().parse_args(argv)
    assert (args.command, args.target, args.profile) == ("run", "kube", "quick")
    assert "quick" in PROFILES
    assert args.junit == results / "junit.xml"
    assert args.results == results / "results.json"
    assert args.failures_dir == results / "failures"


def test_the_script_defaults_to_the_mounted_results_dir() -> None:
    script = plugin()["spec"]["args"][0]
    assert f'results="${{SONOBUOY_RESULTS_DIR:-{RESULTS_DIR}}}"' in script
