"""In a pod the kube target connects with the pod's ServiceAccount: `connect()` without a
kubeconfig falls back to it when KUBERNETES_SERVICE_HOST is set, and says in one line when it is
unusable. The client's real loader reads a token and CA written here (no API server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.config import incluster_config

from harness.cli import main
from harness.errors import EXIT_USAGE, UsageError
from harness.kube.api import connect


@pytest.fixture
def in_a_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pod's environment: no kubeconfig anywhere, the Service's address in the environment, the
    account's files in `tmp_path` (where the client's loader is pointed)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    return tmp_path


def test_without_a_kubeconfig_a_pod_uses_its_service_account(in_a_pod: Path) -> None:
    (in_a_pod / "token").write_text("account-token", encoding="utf-8")
    (in_a_pod / "ca.crt").write_text("not checked until a request\n", encoding="utf-8")
    cluster = connect()
    assert (cluster.server, cluster.context, cluster.kubeconfig) == (
        "https://10.96.0.1:443",
        None,
        None,
    )
    header = cluster.configuration.auth_settings()["BearerToken"]  # what each request sends
    assert (header["key"], header["value"]) == ("authorization", "bearer account-token")
    assert cluster.configuration.ssl_ca_cert == str(in_a_pod / "ca.crt")
    cluster.close()


def test_an_unusable_service_account_is_one_line(in_a_pod: Path) -> None:
    with pytest.raises(UsageError, match=r"^in-cluster configuration is unusable: ") as caught:
        connect()
    assert "\n" not in caught.value.line()


def test_the_cli_reports_it_with_the_usage_exit_code(
    in_a_pod: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--target", "kube", "--profile", "quick"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USAGE
    assert len(err) == 1 and "in-cluster configuration is unusable" in err[0]
