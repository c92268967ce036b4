"""Fixtures for the kube target's tests.

Most tests run against kmock, a mock Kubernetes API server on 127.0.0.1 (`mockapi.py`), with
`fakecluster.FakeCluster` playing the parts of a cluster kmock lacks. Tests marked
`@pytest.mark.kube` need a real cluster: they run only when `HARNESS_KUBECONFIG` names a
kubeconfig (for example the one `kind create cluster --config deploy/kind.yaml` writes), and are
skipped otherwise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mockapi import MockApiServer

from harness.kube.api import Cluster, connect_url


@pytest.fixture
def mock_api(request: pytest.FixtureRequest) -> Iterator[MockApiServer]:
    """kmock; options for it through indirect parametrization, e.g.
    `@pytest.mark.parametrize("mock_api", [{"graceful_pods": True}], indirect=True)`."""
    server = MockApiServer(**getattr(request, "param", {}))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cluster(mock_api: MockApiServer) -> Iterator[Cluster]:
    connection = connect_url(mock_api.url)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def real_kubeconfig() -> str:
    """The kubeconfig of a real cluster, from HARNESS_KUBECONFIG; skips the test without one."""
    path = os.environ.get("HARNESS_KUBECONFIG")
    if not path:
        pytest.skip("needs a real cluster: set HARNESS_KUBECONFIG (see docs/kube.md)")
    return path
