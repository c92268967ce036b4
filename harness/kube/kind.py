"""`--kind-cluster NAME`: a kind cluster made for the run from `deploy/kind.yaml`.

`KindCluster.create()` runs `kind create cluster --name NAME --config deploy/kind.yaml
--kubeconfig FILE --wait 5m` when `kind` and a container engine (docker, or podman with
`KIND_EXPERIMENTAL_PROVIDER=podman`) are on the machine; an existing cluster of that name is reused
and then never deleted. `delete()` removes a cluster it created unless `keep` is set. The
kubeconfig goes to a private file, so the user's own kubeconfig is never changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.errors import EnvironmentProblem, UsageError

CREATE_TIMEOUT_S = 600.0
DELETE_TIMEOUT_S = 180.0


def default_config() -> Path:
    """`deploy/kind.yaml` of the source tree (two workers, so the model's two nodes map)."""
    return Path(__file__).resolve().parents[2] / "deploy" / "kind.yaml"


def _engine() -> str | None:
    provider = os.environ.get("KIND_EXPERIMENTAL_PROVIDER")
    for name in [provider] if provider else ["docker", "podman", "nerdctl"]:
        if shutil.which(name):
            return name
    return None


class KindCluster:
    """One kind cluster for one run. `kubeconfig` is valid after `create()`."""

    def __init__(self, name: str, config: Path | None = None, keep: bool = False) -> None:
        if not name or not name.replace("-", "").isalnum() or name != name.lower():
            raise UsageError(f"--kind-cluster {name!r}: use lowercase letters, digits and '-'")
        self.name = name
        self.config = config or default_config()
        self.keep = keep
        self.kubeconfig: str | None = None
        self._created = False
        self._directory: str | None = None

    def create(self) -> str:
        """Create (or reuse) the cluster; the path of a kubeconfig for it."""
        if shutil.which("kind") is None:
            raise EnvironmentProblem(
                "--kind-cluster needs `kind` on PATH (https://kind.sigs.k8s.io), and it is not"
                " installed; give --kubeconfig for an existing cluster instead"
            )
        if _engine() is None:
            raise EnvironmentProblem(
                "--kind-cluster needs a container engine (docker or podman) and none is installed"
            )
        if not self.config.is_file():
            raise UsageError(f"kind configuration {self.config} is missing")
        self._directory = tempfile.mkdtemp(prefix="svc-lb-kind-")
        self.kubeconfig = str(Path(self._directory) / "kubeconfig")
        if self.name in self._existing():
            self._run(
                [
                    "kind",
                    "export",
                    "kubeconfig",
                    "--name",
                    self.name,
                    "--kubeconfig",
                    self.kubeconfig,
                ],
                60.0,
            )
            return self.kubeconfig
        self._run(
            [
                "kind",
                "create",
                "cluster",
                "--name",
                self.name,
                "--config",
                str(self.config),
                "--kubeconfig",
                self.kubeconfig,
                "--wait",
                "5m",
            ],
            CREATE_TIMEOUT_S,
        )
        self._created = True
        return self.kubeconfig

    def delete(self) -> None:
        """Delete the cluster if this run created it and `keep` is not set. Idempotent."""
        if self._created and not self.keep:
            self._created = False
            self._run(["kind", "delete", "cluster", "--name", self.name], DELETE_TIMEOUT_S)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def _existing(self) -> list[str]:
        output = self._run(["kind", "get", "clusters"], 60.0)
        return output.split()

    @staticmethod
    def _run(argv: list[str], timeout_s: float) -> str:
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise EnvironmentProblem(f"{' '.join(argv[:3])} failed: {error}") from None
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise EnvironmentProblem(f"{' '.join(argv[:3])} failed: {last}")
        return result.stdout
