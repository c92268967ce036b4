"""Connecting, and every environment problem as one line naming its cause."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException
from mockapi import MockApiServer

from harness.errors import EnvironmentProblem, UsageError
from harness.kube.api import connect, translate

KUBECONFIG = """\
apiVersion: v1
kind: Config
current-context: mock
clusters:
- name: mock
  cluster: {{server: "{server}"}}
users:
- name: someone
  user: {{token: secret-token}}
contexts:
- name: mock
  context: {{cluster: mock, user: someone}}
- name: other
  context: {{cluster: mock, user: someone, namespace: x}}
"""


def write(tmp_path: Path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.format(server=server))
    return str(path)


def test_kubeconfig_and_context(mock_api: MockApiServer, tmp_path: Path) -> None:
    path = write(tmp_path, mock_api.url)
    cluster = connect(path, "other")
    cluster.check()
    assert (cluster.server, cluster.context, cluster.kubeconfig) == (mock_api.url, "other", path)
    (request,) = [r for r in mock_api.requests() if r.url.path == "/version/"]
    assert request.headers["Authorization"] == "Bearer secret-token"
    with pytest.raises(UsageError, match="context 'missing'"):
        connect(path, "missing")


def test_default_resolution(
    mock_api: MockApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/absent:{write(tmp_path, mock_api.url)}")
    assert connect().server == mock_api.url
    monkeypatch.delenv("KUBECONFIG")
    with pytest.raises(UsageError, match="no kubeconfig found"):
        connect()


def api_error(status: int, message: str) -> ApiException:
    error = ApiException(status=status, reason="Reason")
    error.body = f'{{"kind": "Status", "message": "{message}"}}'
    return error


def test_translations_are_single_lines() -> None:
    forbidden = translate(
        api_error(403, 'pods "x" is forbidden:\\n cannot create'), "create pods", "https://k:6443"
    )
    assert isinstance(forbidden, EnvironmentProblem)
    assert str(forbidden).startswith(
        "missing permission: the API server at https://k:6443 forbids the harness to create pods"
    )
    unauthorized = translate(api_error(401, "Unauthorized"), "list pods", "https://k:6443")
    assert "rejected the credentials (401 Unauthorized)" in str(unauthorized)
    other = translate(api_error(422, "spec.hostname: Invalid value"), "create pods", "s")
    assert "refused to create pods: 422 Reason: spec.hostname: Invalid value" in str(other)
    for error in (forbidden, unauthorized, other):
        assert "\n" not in str(error)


def test_exec_handshake_failures_keep_their_status() -> None:
    error = ApiException(status=0, reason="Handshake status 403 Forbidden -+-+- {} -+-+- b''")
    problem = translate(error, "create pods/exec in namespace n", "https://k:6443")
    assert str(problem).startswith("missing permission:") and "pods/exec" in str(problem)
    refused = translate(
        ApiException(status=0, reason="[Errno 111] Connection refused"),
        "create pods/exec in namespace n",
        "https://k:6443",
    )
    assert "cannot reach the Kubernetes API server at https://k:6443" in str(refused)


@pytest.mark.parametrize("proxy_url", ["1e-300", "127.0.0.1:3128", "'ftp//x'"])
def test_a_proxy_url_that_is_no_url_is_one_line_and_contacts_nothing(
    tmp_path: Path, proxy_url: str
) -> None:
    """Found by the kubeconfig fuzz (tests/hostile/test_kubeconfig.py): a cluster's
    `proxy-url` without a scheme, or not a string, crashed the client with a traceback."""
    path = tmp_path / "kubeconfig"
    text = KUBECONFIG.format(server="https://127.0.0.1:9")
    path.write_text(
        text.replace(
            'server: "https://127.0.0.1:9"',
            f'server: "https://127.0.0.1:9", proxy-url: {proxy_url}',
        )
    )
    with pytest.raises(UsageError, match=r"proxy-url .* is not a URL") as raised:
        connect(str(path), None)
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)
