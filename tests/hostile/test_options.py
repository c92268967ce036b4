"""Command lines, fuzzed: every sub-command, every option, hostile values, and HARNESS_BUDGET.

Each argv is a sub-command (or garbage) followed by options of that sub-command (taken from the
parser itself, so a new option is fuzzed too), abbreviated or with `=`, each with a value drawn
for its kind: numbers (huge, negative, not numbers), durations, regexes, target names, paths
(relative, nested, with NUL), or any hostile string (unicode, surrogates as os.fsdecode makes
them from bad bytes, control characters, strings that look like options). `harness.cli.main`
must then:

- exit 0 for --help and --version (argparse's SystemExit), printing to stdout;
- otherwise return 0 or 1 (a run that ran), or 2 or 3 with exactly one line on stderr, never a
  traceback and never "internal harness error";
- on exit 2, leave the working directory exactly as it was: nothing started, nothing written.

Nothing may start for real: runs and replays always end with `--target` of the model or of a
model mutant (simulated time, no namespaces) and `--examples 1 --steps 2`; `clean` sees no
leftovers (its scan of /run/netns and /tmp is stubbed, so other people's runs are untouched)
and `clean --kube` no cluster; `report --mutants` is stubbed (the real one takes minutes). The
process's temporary directory, home and failure fallback point into the test's directory, the
working directory is the test's, and the checkout must be unchanged at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import harness.failures
from harness.cli import BUDGET_ENVIRONMENT, build_parser, main
from harness.events import sequence_to_json
from harness.kube.cleanup import Cleaned
from harness.reporting.runs import new_run_directory, start_run, write_figures
from harness.targets.mutants import MUTANTS
from tests.hostile.conftest import Inputs, fuzz_settings, sizes
from tests.hostile.hostile import EDGE_TEXT, hostile_text

CHECKOUT = Path(__file__).resolve().parents[2]
SAFE_TARGETS = ("model", "model:x", "mutant:nosuch", "nosuch", "")
SAFE_TARGETS += tuple(f"mutant:{name}" for name in MUTANTS)  # simulated time, no namespaces
SMALL_RUN = ["--examples", "1", "--steps", "2"]
NUMBERS = ("0", "1", "-1", "2", "007", "1e3", "1.5", "nan", "inf", "-inf", "0x10", "9" * 25)
NUMBERS += ("9" * 5000, "١٢", "½", " 3 ", "3_000")
DURATIONS = ("90s", "5m", "1h30m", "2.5m", "0s", "0", "1e400h", "9" * 400 + "h", "-5s", "5d")
REGEXES = ("endpoints", ".*", "(", "[", "a{99999999999}", "(?P<x", "\\", "^$", "(a*)*b")
PATHS = ("out.json", "sub/dir/file.json", ".", "..x", "dir", "a\x00b", "nonexistent/x.json")
PATHS += (" ", "\udcff.json", "results.json/", "-")


def option_table() -> dict[str, dict[str, argparse.Action]]:
    """Every sub-command's options, by option string (the parser's own)."""
    parser = build_parser()
    table: dict[str, dict[str, argparse.Action]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                table[name] = {o: a for a in sub._actions for o in a.option_strings}
    return table


OPTIONS = option_table()
VALUES: dict[str, tuple[str, ...]] = {
    "--examples": NUMBERS,
    "--steps": NUMBERS,
    "--seed": NUMBERS,
    "--deadline": NUMBERS,
    "--budget": DURATIONS,
    "--focus": REGEXES,
    "--skip": REGEXES,
    "--results": PATHS,
    "--junit": PATHS,
    "--failures-dir": PATHS,
    "--input": PATHS,
    "--output": PATHS,
    "--profile": ("quick", "default", "deep", "Quick", ""),
    "--pods": ("local", "cluster", "none"),
    "--prefix": ("hk", "hk1", "hk12345", "hk123456", "hkxyz", "xx", "hk\u0661"),
    "--kind-cluster": ("kind", "a b"),
}


def _safe(token: str) -> str:
    """`token` with no way out of the working directory and no way to choose the target (the
    test appends a safe one): no '/' before a name, no '..', no prefix of --target."""
    token = token.replace("..", "_.").replace("=/", "=_")
    if token.startswith("/"):
        token = "_" + token[1:]
    if token.startswith("--t") or token.startswith("-t"):
        token = "x" + token
    return token


@st.composite
def option_tokens(draw: st.DrawFn, command: str) -> list[str]:
    options = OPTIONS.get(command, {})
    tokens: list[str] = []
    names = sorted(o for o in options if o not in ("--target", "--mutants", "-h", "--help"))
    for _ in range(draw(st.integers(0, 5), label="options")):
        kind = draw(st.sampled_from(["option", "option", "option", "stray", "help"]))
        if kind == "stray" or not names:
            tokens.append(draw(hostile_text(8)))
            continue
        if kind == "help":
            tokens.append(draw(st.sampled_from(["-h", "--help", "--version", "--he"])))
            continue
        name = draw(st.sampled_from(names), label="option")
        spelled = name[: draw(st.integers(3, len(name)))] if len(name) > 3 else name
        action = options[name]
        if action.nargs == 0:
            tokens.append(spelled)
            continue
        value = draw(st.sampled_from(VALUES.get(name, EDGE_TEXT)) | hostile_text(10))
        if draw(st.booleans(), label="with ="):
            tokens.append(f"{spelled}={value}")
        else:
            tokens += [spelled, value] if draw(st.integers(0, 9)) else [spelled]
    return [_safe(token) for token in tokens]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from([*OPTIONS, *OPTIONS, "", "frobnicate", "--version", "RUN"]))
    argv = [command] if command else []
    if command == "replay" and draw(st.booleans()):
        argv.append(_safe(draw(st.sampled_from(PATHS) | hostile_text(8))))
    argv += draw(option_tokens(command))
    if command in ("run", "replay"):
        argv += ["--target", draw(st.sampled_from(SAFE_TARGETS), label="target")]
    if command == "run":
        argv += SMALL_RUN
    return argv


BUDGETS = st.none() | st.sampled_from(DURATIONS) | hostile_text(8)


def _tree(root: Path) -> dict[str, int]:
    """Every path under `root` with its modification time in ns (file contents change it)."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = os.lstat(path).st_mtime_ns
    return found


class Streams:
    """A run's stdout and stderr as a real console has them: UTF-8, strict on stdout (a lone
    surrogate printed there is a crash), backslash-escaping on stderr."""

    def __init__(self) -> None:
        self.out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
        self.err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")

    def text(self) -> tuple[str, str]:
        texts = []
        for stream in (self.out, self.err):
            stream.flush()
            buffer = stream.buffer
            assert isinstance(buffer, io.BytesIO)
            texts.append(buffer.getvalue().decode("utf-8"))
        return texts[0], texts[1]


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory in which the harness can only touch the test's own directory."""
    work = tmp_path / "work"
    (work / "reports").mkdir(parents=True)
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(harness.failures, "FALLBACK_DIR", tmp_path / "fallback")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv(BUDGET_ENVIRONMENT, raising=False)
    monkeypatch.setattr("harness.local.cleanup._scan", lambda directory: [])
    monkeypatch.setattr("harness.kube.cleanup.clean_cluster", lambda *_a, **_k: Cleaned())
    monkeypatch.setattr("harness.reporting.mutants.measure_mutants", _fake_mutants)
    before = _checkout_state()
    yield work
    assert not (tmp_path / "fallback").exists(), "a counterexample went to the fallback"
    assert _checkout_state() == before, "the checkout changed"


def _fake_mutants(runs_dir: Path) -> tuple[Path, dict[str, object]]:
    """`measure_mutants` without the minutes: a run with a small mutants.json."""
    import datetime

    now = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)
    run = start_run(new_run_directory(runs_dir, now), profile="quick", command="fake", now=now)
    figures = {"mutants": {}, "caught": "0 of 0", "median_counterexample_events": None,
               "references": {}, "seed": 0}  # fmt: skip
    write_figures(run, "mutants.json", figures, now)
    return run, figures


def _checkout_state() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def invoke(argv: list[str], budget: str | None) -> tuple[int, str, str]:
    """`main(argv)` with HARNESS_BUDGET set to `budget`; (exit code, stdout, stderr)."""
    streams = Streams()
    if budget is not None:
        os.environ[BUDGET_ENVIRONMENT] = budget
    try:
        with redirect_stdout(streams.out), redirect_stderr(streams.err):
            try:
                code = main(argv)
            except SystemExit as done:  # argparse's --help and --version
                code = done.code if isinstance(done.code, int) else -1
                assert code == 0, f"SystemExit({done.code!r})"
                assert any(t.startswith(("-h", "--h", "--v")) for t in argv), argv
    finally:
        os.environ.pop(BUDGET_ENVIRONMENT, None)
    out, err = streams.text()
    return code, out, err


def check(code: int, out: str, err: str, changed: bool) -> None:
    """The oracle of the module docstring."""
    assert "Traceback" not in err and "internal harness error" not in err, err
    if code in (2, 3):
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("harness: "), lines
    else:
        assert code in (0, 1), (code, err)
    if code == 2:
        assert not changed, "a usage error left something behind"


def _encodable(budget: str | None) -> bool:
    if budget is None:
        return True
    try:
        os.fsencode(budget)
    except UnicodeEncodeError:
        return False
    return "\x00" not in budget


@sizes(2000, 15000)
def test_hostile_command_lines_end_in_one_line_and_the_right_exit_code(
    sandbox: Path, inputs: Inputs, examples: int
) -> None:
    @fuzz_settings(examples)
    @given(command_lines(), BUDGETS)
    def one(argv: list[str], budget: str | None) -> None:
        assume(_encodable(budget))
        before = _tree(sandbox)
        code, out, err = invoke(argv, budget)
        inputs.tried(f"{argv[0] if argv and argv[0] in OPTIONS else 'other'} exit {code}")
        check(code, out, err, _tree(sandbox) != before)

    one()
    inputs.at_least(examples)


def test_harness_budget_alone(sandbox: Path, inputs: Inputs) -> None:
    """HARNESS_BUDGET is read only by `run`, after the options: any value is a duration or one
    line naming the variable, exit 2, before anything starts."""

    @fuzz_settings(1000)
    @given(BUDGETS.filter(lambda b: b is not None))
    def one(budget: str) -> None:
        assume(_encodable(budget))
        before = _tree(sandbox)
        code, out, err = invoke(["run", "--target", "nosuch-target", *SMALL_RUN], budget)
        check(code, out, err, _tree(sandbox) != before)
        assert code == 2
        if budget.strip():
            inputs.tried("budget refused" if BUDGET_ENVIRONMENT in err else "target refused")
        else:
            inputs.tried("empty")

    one()
    inputs.at_least(1000)


@pytest.mark.parametrize(
    "argv",
    [
        [b"replay", b"\xff\xfe.json", b"--target", b"model"],
        [b"run", b"--target", b"model", b"--focus", b"\xff", *(s.encode() for s in SMALL_RUN)],
        [b"run", b"--target", b"\xc3", *(s.encode() for s in SMALL_RUN)],
        [b"clean", b"--prefix", b"hk\xff"],
        [b"report", b"--input", b"\xff"],
    ],
)
def test_bytes_that_are_not_utf8_on_a_real_command_line(sandbox: Path, argv: list[bytes]) -> None:
    """The operating system's argv is bytes; Python turns bad bytes into lone surrogates, which a
    strict stdout cannot print. A real process, so the real console encoding is used."""
    result = run_harness(argv)
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err


def run_harness(argv: list[bytes]) -> subprocess.CompletedProcess[bytes]:
    environment = {**os.environ, "PYTHONIOENCODING": "utf-8", "LC_ALL": "C.UTF-8"}
    command = [sys.executable.encode(), b"-m", b"harness.cli", *argv]
    return subprocess.run(command, capture_output=True, env=environment, timeout=120)


def test_a_sequence_file_whose_name_is_not_utf8_replays(sandbox: Path) -> None:
    name = b"\xff\xfe.json"
    Path(os.fsdecode(name)).write_text(json.dumps(sequence_to_json([])))
    result = run_harness([b"replay", name, b"--target", b"model"])
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert b"\\xff" in result.stdout or b"\\udcff" in result.stdout, result.stdout
