"""Sequence files and failure files, broken every way: one line and exit 2, or a sane sequence.

The documents start valid (sequences the harness's own generator draws, saved the way the
harness saves them, as plain sequences and as failure files of both readable schemas) and are
then broken (`tests.hostile.hostile`): values replaced, keys dropped or added, bytes damaged.
Reading one must end in exactly one of two ways:

- refused: `UsageError` with one non-empty line (exit 2 from `harness replay`);
- accepted: events that replay on an empty model, every number finite (the file can be written
  back as strict JSON), every name one Kubernetes would accept, and for a failure file a run
  context whose options are all strings or numbers of the right kind.

Never any other exception, and never a hang (a hostile file can ask for a million replicas).
"""

from __future__ import annotations

import io
import json
import math
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from harness.checks import PROPERTIES
from harness.cli import main
from harness.errors import UsageError
from harness.events import Event, apply_all, sequence_to_json
from harness.failures import (
    READABLE_FAILURE_SCHEMAS,
    REPLAY_OPTIONS,
    FailureRecord,
    RunContext,
    load_failure,
    run_context_of,
)
from harness.strategies import event_sequences
from tests.hostile.conftest import Inputs, fuzz_settings, sizes
from tests.hostile.hostile import broken, damaged, dumps

LOAD_LIMIT_S = 5.0
EVENT_KEYS = ("kind", "service", "pod", "group", "replicas", "seconds", "selector", "labels")
FAILURE_KEYS = ("schema", "property", "run", "options", "seed", "target", "deadline")


def failure_document(events: list[Event], schema: str, options: dict[str, Any]) -> Any:
    """A failure file as the harness writes it (v2), or as v1 wrote it (target and seed at the
    top of the failure object, no run options)."""
    record = FailureRecord(
        "fairness",
        "chi-square p=1e-9",
        events,
        RunContext("local:external", 7, options),
        verdicts=[{"property": "fairness", "holds": False, "message": "skewed", "evidence": {}}],
    )
    document = record.to_json()
    if schema == "harness.failure/v1":
        failure = document["failure"]
        run = failure.pop("run")
        failure.update(schema=schema, target=run["target"], seed=run["seed"])
    return document


OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "proxy_command": st.just("./proxy --port 9"),
        "kubeconfig": st.just("kube.yaml"),
        "context": st.just("kind-a"),
        "pods": st.just("local"),
        "deadline": st.just(2.5),
    },
)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A valid sequence or failure document."""
    events = draw(event_sequences(max_events=8), label="events")
    shape = draw(st.sampled_from(["sequence", *READABLE_FAILURE_SCHEMAS]), label="shape")
    if shape == "sequence":
        return sequence_to_json(events)
    return failure_document(events, shape, draw(OPTIONS, label="options"))


@st.composite
def hostile_files(draw: st.DrawFn) -> bytes:
    """The bytes of a broken document: broken as JSON, damaged as bytes, or both."""
    document = draw(documents())
    how = draw(st.sampled_from(["json", "json", "json", "bytes", "both"]), label="break")
    if how in ("json", "both"):
        document = draw(broken(document, EVENT_KEYS + FAILURE_KEYS), label="broken")
    text = dumps(document)
    if how == "json":
        return text.encode("utf-8", "surrogatepass")
    return draw(damaged(text), label="damaged")


def check_accepted(events: list[Event], failure: dict[str, Any] | None) -> None:
    """What an accepted file must be (see the module docstring)."""
    json.dumps([e.to_json() for e in events], allow_nan=False)  # every number finite
    for event in events:
        for value in event.to_json().values():
            assert not (isinstance(value, float) and not math.isfinite(value))
        str(event).encode("utf-8")  # printable: no lone surrogates reach the console
    apply_all(events)
    if failure is None:
        return
    assert failure["schema"] in READABLE_FAILURE_SCHEMAS
    assert failure["property"] in PROPERTIES
    run = run_context_of(failure)
    if run is not None:
        assert isinstance(run.target, str) and run.target
        assert isinstance(run.seed, int)
        assert set(run.options) <= set(REPLAY_OPTIONS)
        for flag in run.flags():
            assert isinstance(flag, str) and "\x00" not in flag


def read(path: Path, inputs: Inputs) -> None:
    began = time.monotonic()
    try:
        events, failure = load_failure(path)
    except UsageError as error:
        message = str(error)
        assert message and "\n" not in message, repr(message)
        inputs.tried("refused")
    else:
        check_accepted(events, failure)
        inputs.tried("accepted")
    assert time.monotonic() - began < LOAD_LIMIT_S, "reading one file took too long"


@sizes(2000, 15000)
def test_broken_sequence_and_failure_files_are_refused_in_one_line(
    tmp_path: Path, inputs: Inputs, examples: int
) -> None:
    path = tmp_path / "sequence.json"

    @fuzz_settings(examples)
    @given(hostile_files())
    def one(data: bytes) -> None:
        path.write_bytes(data)
        read(path, inputs)

    one()
    inputs.at_least(examples)


def test_valid_files_of_both_schemas_are_accepted(tmp_path: Path, inputs: Inputs) -> None:
    """The other half of the oracle: the harness's own files always load."""
    path = tmp_path / "sequence.json"

    @fuzz_settings(300)
    @given(documents())
    def one(document: Any) -> None:
        path.write_text(dumps(document))
        events, failure = load_failure(path)
        check_accepted(events, failure)
        inputs.tried("valid")

    one()
    inputs.at_least(300)


@sizes(400, 2000)
def test_replay_of_a_broken_file_exits_2_in_one_line(
    tmp_path: Path, inputs: Inputs, examples: int
) -> None:
    """End to end through `harness replay FILE --target model`: a refused file exits 2 with one
    line on stderr and nothing on stdout; an accepted one replays (exit 0 or 1)."""
    path = tmp_path / "replay.json"

    @fuzz_settings(examples)
    @given(hostile_files())
    def one(data: bytes) -> None:
        path.write_bytes(data)
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["replay", str(path), "--target", "model"])
        inputs.tried(f"exit {code}")
        assert "Traceback" not in err.getvalue()
        if code == 2:
            lines = err.getvalue().splitlines()
            assert len(lines) == 1 and lines[0].startswith("harness: "), lines
            assert out.getvalue() == ""
        else:
            assert code in (0, 1), err.getvalue()

    one()
    inputs.at_least(examples)
