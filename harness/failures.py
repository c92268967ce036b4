"""Failure files: a shrunk counterexample with everything needed to replay it with one paste.

A failure file is a sequence file (`harness.events`, schema `harness.sequence/v1`) whose
`failure` object (schema `harness.failure/v2`) names the property, the verdicts, whether it
reproduced on fresh targets, and the run it came from: the target and every option the target
needed (`--proxy-command`, `--kubeconfig`, `--context`, `--pods`, `--deadline`), so that
`harness replay FILE` alone reproduces it, and the printed replay command carries the same.
Files of schema `harness.failure/v1` (no run options) are still read.

Saving never loses a finding: the file is written atomically into the failures directory, and
if that fails it is written to a fallback directory under the system's temporary directory and
printed in full.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness.checks import PROPERTIES
from harness.documents import BadDocument, check_schema, shorten
from harness.errors import UsageError
from harness.events import Event, load_sequence_document, sequence_to_json
from harness.files import write_atomically
from harness.model.objects import MAX_NODES
from harness.registry import POD_MODES

FAILURE_SCHEMA = "harness.failure/v2"
READABLE_FAILURE_SCHEMAS = ("harness.failure/v1", FAILURE_SCHEMA)
FALLBACK_DIR = Path(tempfile.gettempdir()) / "harness-failures"
REPLAY_OPTIONS = (
    "proxy_command",
    "kubeconfig",
    "context",
    "pods",
    "read_node_rules",
    "deadline",
    "nodes",
    "restart_cluster_proxy",
    "proxy_selector",
    "kube_sctp",
)
"""Run options a replay needs (option name with dashes is the flag). `restart_cluster_proxy`
is a switch (True or absent): a run that was allowed to restart the cluster's kube-proxy found
its failure that way, so its replay is allowed the same, and the printed command says so.
`kube_sctp` likewise (`--kube-sctp`: the run drew SCTP Services on the kube target)."""


@dataclass(frozen=True)
class RunContext:
    """The run a failure came from: target spec, seed, the options the target needed, and the
    run's false-alarm budget (`alarm_budget`: its `max_checks` sizes every statistical sample,
    and so how much of the target's random stream each step draws; a replay judged with
    another budget can take other paths)."""

    target: str
    seed: int
    options: Mapping[str, Any] = field(default_factory=dict)
    alarm_budget: Mapping[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"target": self.target, "seed": self.seed, "options": dict(self.options)}
        if self.alarm_budget is not None:
            data["alarm_budget"] = dict(self.alarm_budget)
        return data

    def flags(self) -> list[str]:
        """The command-line flags for the options (only those that were given)."""
        flags = []
        for name in REPLAY_OPTIONS:
            value = self.options.get(name)
            if value is None or value is False:
                continue
            flag = f"--{name.replace('_', '-')}"
            flags += [flag] if value is True else [flag, str(value)]
        return flags


@dataclass
class FailureRecord:
    """One saved counterexample (see the module docstring)."""

    property: str
    message: str
    events: list[Event]
    run: RunContext
    verdicts: Any = None
    history: list[dict[str, Any]] = field(default_factory=list)
    flaky: bool = False
    reproduced: str = ""

    def to_json(self) -> dict[str, Any]:
        return sequence_to_json(
            self.events,
            failure={
                "schema": FAILURE_SCHEMA,
                "property": self.property,
                "message": self.message,
                "verdicts": self.verdicts,
                "flaky": self.flaky,
                "reproduced": self.reproduced,
                "run": self.run.to_json(),
            },
            history=self.history,
        )


def failure_id(prop: str, target_name: str, events: Sequence[Event]) -> str:
    digest = hashlib.sha256(json.dumps([e.to_json() for e in events]).encode()).hexdigest()[:8]
    safe_target = "".join(c if c.isalnum() else "-" for c in target_name)
    return f"{prop}-{safe_target}-{digest}"


def save_failure(
    record: FailureRecord, directory: Path, target_name: str, err: TextIO | None = None
) -> Path:
    """Write the record into `directory` (atomically) and return its path; if that fails,
    write it under FALLBACK_DIR instead, print it in full on `err`, and return that path."""
    name = f"{failure_id(record.property, target_name, record.events)}.json"
    text = json.dumps(record.to_json(), indent=2) + "\n"
    try:
        path = directory / name
        write_atomically(path, text)
        return path
    except OSError as error:
        FALLBACK_DIR.mkdir(parents=True, exist_ok=True)
        path = FALLBACK_DIR / name
        (err or sys.stderr).write(
            f"harness: cannot save the counterexample in {directory} ({error.strerror});"
            f" saved it to {path} instead. Its events:\n"
            + "".join(f"  {i}. {e}\n" for i, e in enumerate(record.events, 1))
        )
        write_atomically(path, text)
        return path


def load_failure(path: Path) -> tuple[list[Event], dict[str, Any] | None]:
    """The events of a sequence or failure file, and its `failure` object (None for a plain
    sequence file); UsageError (one line) for an unknown failure schema, an unknown property or
    a run whose target, seed or options are not what `harness replay` can use."""
    events, document = load_sequence_document(path)
    failure = document.get("failure")
    if failure is None:
        return events, None
    if not isinstance(failure, dict):
        raise UsageError(f"{path}: failure must be an object, got {shorten(failure)}")
    try:
        schema = check_schema(failure, READABLE_FAILURE_SCHEMAS)
    except BadDocument as error:
        raise UsageError(f"{path}: failure {error}") from None
    prop = failure.get("property")
    if not isinstance(prop, str) or prop not in PROPERTIES:
        raise UsageError(
            f"{path}: failure.property must name a property ({', '.join(PROPERTIES)}),"
            f" got {shorten(prop)}"
        )
    run = failure if schema == "harness.failure/v1" else failure.get("run")
    where = "failure" if run is failure else "failure.run"
    if not isinstance(run, dict):
        raise UsageError(f"{path}: {where} must be an object with target, seed and options")
    _check_run(run, f"{path}: {where}", required=run is not failure)
    return events, failure


def _check_run(run: Mapping[str, Any], where: str, required: bool) -> None:
    """UsageError unless `run` has a usable target, seed and options (see `run_context_of`)."""
    target, seed = run.get("target"), run.get("seed", 0)
    if (required or target is not None) and not _text(target):
        raise UsageError(f"{where}.target must be a target name, got {shorten(target)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"{where}.seed must be an integer, got {shorten(seed)}")
    options = run.get("options", {})
    if not isinstance(options, dict):
        raise UsageError(f"{where}.options must be an object, got {shorten(options)}")
    for name in REPLAY_OPTIONS:
        value = options.get(name)
        if value is None:
            continue
        if name == "deadline":
            number = value if isinstance(value, int | float) and not isinstance(value, bool) else 0
            valid = 0 < number < math.inf
            expected = "a positive number of seconds"
        elif name == "nodes":
            valid = (
                isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_NODES
            )
            expected = f"a whole number of nodes, 1 to {MAX_NODES}"
        elif name == "pods":
            valid, expected = value in POD_MODES, f"one of {', '.join(POD_MODES)}"
        elif name in ("restart_cluster_proxy", "kube_sctp"):
            valid, expected = value is True, "true (or absent)"
        else:
            valid, expected = _text(value), "a non-empty string"
        if not valid:
            raise UsageError(f"{where}.options.{name} must be {expected}, got {shorten(value)}")


def _text(value: object) -> bool:
    """Whether `value` can be given on a command line: a non-empty string without NUL."""
    return isinstance(value, str) and bool(value.strip()) and "\x00" not in value


def run_context_of(failure: Mapping[str, Any]) -> RunContext | None:
    """The run a failure object names (one `load_failure` accepted); a v1 file names only its
    target and seed, and None when it names no target."""
    run = failure.get("run")
    if not isinstance(run, Mapping) or not run.get("target"):  # a v1 file, or a run naming none
        target = failure.get("target")
        return RunContext(str(target), int(failure.get("seed", 0))) if target else None
    options = {k: v for k, v in dict(run.get("options", {})).items() if k in REPLAY_OPTIONS}
    budget = run.get("alarm_budget")
    kept = _budget(budget) if isinstance(budget, Mapping) else None
    return RunContext(str(run.get("target", "")), int(run.get("seed", 0)), options, kept)


def _budget(data: Mapping[str, Any]) -> dict[str, float] | None:
    """A saved alarm budget's two numbers, or None when they are not sane."""
    alpha, checks = data.get("run_alpha"), data.get("max_checks")
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not 0 < alpha < 1:
        return None
    if not isinstance(checks, int) or isinstance(checks, bool) or not 1 <= checks <= 10**9:
        return None
    return {"run_alpha": float(alpha), "max_checks": checks}


def replay_command(path: Path, run: RunContext) -> str:
    """The shell command that replays `path` as the run did (quoted for pasting)."""
    words = ["harness", "replay", str(path), "--target", run.target, *run.flags()]
    return shlex.join(words)
