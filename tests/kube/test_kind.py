"""`--kind-cluster`: the kind commands run, and one line when kind or an engine is missing.

`kind` and `docker` are replaced by scripts that log their arguments, so nothing is created.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import EnvironmentProblem, UsageError
from harness.kube.kind import KindCluster, default_config

KIND = """#!/bin/sh
echo "kind $*" >> "{log}"
case "$1 $2" in
  "get clusters") echo "{existing}" ;;
esac
exit 0
"""


def fake_tools(tmp_path: Path, existing: str = "", engine: bool = True) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    (bin_dir / "kind").write_text(KIND.format(log=log, existing=existing))
    (bin_dir / "kind").chmod(0o755)
    if engine:
        (bin_dir / "docker").write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / "docker").chmod(0o755)
    return log


@pytest.fixture
def only_fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    return tmp_path


def test_creates_from_the_repo_config_and_deletes(only_fakes: Path) -> None:
    log = fake_tools(only_fakes)
    kind = KindCluster("svc-lb")
    kubeconfig = kind.create()
    kind.delete()
    kind.delete()  # idempotent
    lines = log.read_text().splitlines()
    assert lines[0] == "kind get clusters"
    assert lines[1] == (
        f"kind create cluster --name svc-lb --config {default_config()}"
        f" --kubeconfig {kubeconfig} --wait 5m"
    )
    assert lines[2:] == ["kind delete cluster --name svc-lb"]
    assert default_config().is_file()


def test_keep_and_existing_clusters_are_not_deleted(only_fakes: Path) -> None:
    log = fake_tools(only_fakes, existing="svc-lb")
    kind = KindCluster("svc-lb")
    kind.create()
    kind.delete()
    assert not [line for line in log.read_text().splitlines() if "delete" in line]
    assert "kind export kubeconfig --name svc-lb" in log.read_text()


def test_keep_cluster(only_fakes: Path) -> None:
    log = fake_tools(only_fakes)
    kind = KindCluster("svc-lb", keep=True)
    kind.create()
    kind.delete()
    assert not [line for line in log.read_text().splitlines() if "delete" in line]


def test_missing_kind_or_engine_is_one_line(
    only_fakes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(only_fakes / "nothing"))
    with pytest.raises(EnvironmentProblem, match="needs `kind` on PATH"):
        KindCluster("svc-lb").create()
    fake_tools(only_fakes, engine=False)
    monkeypatch.setenv("PATH", f"{only_fakes / 'bin'}")
    with pytest.raises(EnvironmentProblem, match="container engine"):
        KindCluster("svc-lb").create()
    with pytest.raises(UsageError):
        KindCluster("Bad_Name")
