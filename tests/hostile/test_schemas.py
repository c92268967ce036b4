"""Every file format names its version, and a version this harness does not read is refused in one
line naming the version read and the ones understood.

The formats: sequence files (harness.sequence), failure files (harness.failure), results files
(harness.results), the figure files of a run (harness.throughput, harness.model_throughput,
harness.local_scale, harness.rule_sync, harness.mutants), run manifests (harness.run),
kubeconfigs (apiVersion v1, kind Config) and the external-proxy protocol (hello's `protocol`).
"""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.events import SEQUENCE_SCHEMA, load_sequence, save_sequence, sequence_to_json
from harness.failures import READABLE_FAILURE_SCHEMAS, load_failure
from harness.kube.api import connect
from harness.proxies.protocol import PROTOCOL_VERSION
from harness.proxies.sdk import serve
from harness.reporting.formats import READABLE, RESULTS_PATTERN, UNVERSIONED, WRITTEN
from harness.reporting.runs import MANIFEST, RUN_SCHEMA, start_run, write_figures
from harness.reporting.sources import FIGURE_FILES, load_sources
from tests.hostile.test_sequence_files import failure_document

NOW = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)


def refusal(error: BaseException | str, read: str, understood: tuple[str, ...]) -> None:
    text = str(error)
    assert "\n" not in text, text
    assert read in text and all(version in text for version in understood), text


def test_the_harness_writes_a_schema_into_every_file(tmp_path: Path) -> None:
    save_sequence(tmp_path / "s.json", [])
    assert json.loads((tmp_path / "s.json").read_text())["schema"] == SEQUENCE_SCHEMA
    assert (
        failure_document([], READABLE_FAILURE_SCHEMAS[-1], {})["failure"]["schema"]
        == (READABLE_FAILURE_SCHEMAS[-1])
    )
    start_run(tmp_path / "run", profile="quick", command="test", now=NOW)
    assert json.loads((tmp_path / "run" / MANIFEST).read_text())["schema"] == RUN_SCHEMA
    for name, schema in WRITTEN.items():
        if "*" not in name:
            path = write_figures(tmp_path / "run", name, {"figure": 1}, NOW)
            assert json.loads(path.read_text())["schema"] == schema


def test_every_figure_file_a_report_reads_has_a_schema() -> None:
    assert set(FIGURE_FILES) | {RESULTS_PATTERN} == set(WRITTEN) == set(READABLE)


def test_sequence_and_failure_files_of_another_version(tmp_path: Path) -> None:
    path = tmp_path / "future.json"
    path.write_text(json.dumps({"schema": "harness.sequence/v9", "events": []}))
    with pytest.raises(UsageError) as sequence:
        load_sequence(path)
    refusal(sequence.value, "harness.sequence/v9", (SEQUENCE_SCHEMA,))
    document = {**sequence_to_json([]), "failure": {"schema": "harness.failure/v3"}}
    path.write_text(json.dumps(document))
    with pytest.raises(UsageError) as failure:
        load_failure(path)
    refusal(failure.value, "harness.failure/v3", READABLE_FAILURE_SCHEMAS)


@pytest.mark.parametrize("name", sorted(WRITTEN))
def test_figure_files_of_another_version(tmp_path: Path, name: str) -> None:
    file_name = name.replace("*", "-x")
    (tmp_path / file_name).write_text(json.dumps({"schema": "harness.other/v7"}))
    malformed = load_sources([tmp_path]).malformed
    refusal(malformed[file_name], "harness.other/v7", READABLE[name])
    (tmp_path / file_name).write_text(json.dumps({"results": []}))
    if name in UNVERSIONED:  # written before they named a schema: read as their v1
        assert file_name not in load_sources([tmp_path]).malformed
    else:
        refusal(load_sources([tmp_path]).malformed[file_name], "no schema", READABLE[name])


def test_a_run_manifest_of_another_version(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps({"schema": "harness.run/v2"}))
    (tmp_path / "rule_sync.json").write_text(json.dumps({"schema": "harness.rule_sync/v1"}))
    sources = load_sources([tmp_path])
    refusal(sources.malformed[str(tmp_path / MANIFEST)], "harness.run/v2", (RUN_SCHEMA,))
    assert "rule_sync.json" in sources.figures  # the figures are still read


@pytest.mark.parametrize(("field", "value"), [("apiVersion", "v2"), ("kind", "Configuration")])
def test_a_kubeconfig_of_another_version(tmp_path: Path, field: str, value: str) -> None:
    path = tmp_path / "kubeconfig"
    document = {"apiVersion": "v1", "kind": "Config", "clusters": [], field: value}
    path.write_text(json.dumps(document))
    with pytest.raises(UsageError) as raised:
        connect(str(path))
    refusal(raised.value, repr(value), (field,))


def test_a_proxy_refuses_a_hello_of_another_protocol_version() -> None:
    out = io.StringIO()
    hello = {"type": "hello", "seq": 1, "protocol": PROTOCOL_VERSION + 1}
    serve(lambda ports: None, stdin=io.StringIO(json.dumps(hello) + "\n"), stdout=out)
    reply = json.loads(out.getvalue())
    assert reply["ok"] is False and reply["seq"] == 1
    refusal(reply["error"], str(PROTOCOL_VERSION + 1), (str(PROTOCOL_VERSION),))
