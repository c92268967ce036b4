"""`harness run --target local:external --proxy-command CMD`, fuzzed: a proxy that cannot start
is an environment error in one line (exit 3), an empty command a usage error (exit 2), and the run
leaves nothing behind.

CMD runs as root (`sh -c CMD` in the node's namespace), so the fuzz never lets hostile text reach
the shell unquoted: commands are built from fixed shapes (a command that does not exist, exits at
once, prints garbage, closes its stdout, echoes the hello back, kills itself, breaks the shell's
syntax, is too long to start, is empty) and hostile text only ever appears inside one
shell-quoted word, which is data, or as the name of a command prefixed `hk-no-such-` and stripped
of '/', which no machine has. None of them answers `hello`, so each run must end before its
first example with exit 3 and one line naming why the proxy could not start (or exit 2 for a
command that is empty); afterwards `harness clean` finds nothing of the run (no namespace,
process or directory with its prefix) and the root namespace is unchanged (tests/conftest.py).
Each run builds a local cluster (about half a second).
"""

from __future__ import annotations

import io
import os
import re
import shlex
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from harness.cli import main
from harness.local.cleanup import clean
from tests.hostile.conftest import Inputs, fuzz_settings, sizes
from tests.hostile.hostile import hostile_text
from tests.local.conftest import needs_root
from tests.local.test_cleanup import leftovers

pytestmark = [pytest.mark.netns, needs_root]

PREFIX = re.compile(r"run prefix (hk[0-9a-f]{5})")
SMALL_RUN = ["--examples", "1", "--steps", "2", "--seed", "1", "--failures-dir", "failures"]


def encodable(command: str) -> bool:
    try:
        os.fsencode(command)
    except UnicodeEncodeError:
        return False
    return True


def quoted(text: str) -> str:
    """`text` as one shell word the shell never interprets (NUL cannot be in a command line)."""
    return shlex.quote(text.replace("\x00", ""))


def missing(text: str) -> str:
    """A command name no machine has."""
    return quoted("hk-no-such-" + text.replace("/", "_"))


SYNTAX = ("(", ")", ";;", "'", '"', "`", "$(", "{", "|", "&&", "if", "fi", "<", "done")
SHAPES = ("missing", "missing", "missing args", "exit", "true", "printf", "printf line")
SHAPES += ("echo then exit", "close stdout", "cat", "kill itself", "syntax", "long", "empty")
SHAPES += ("nul bytes",)


@st.composite
def proxy_commands(draw: st.DrawFn) -> str:
    text = draw(hostile_text(12), label="text")
    shape = draw(st.sampled_from(SHAPES), label="shape")
    if shape == "missing":
        return missing(text)
    if shape == "missing args":
        return f"{missing(text)} {quoted(text)} --flag={quoted(text)}"
    if shape == "exit":
        return f"exit {draw(st.integers(0, 255))}"
    if shape == "true":
        return draw(st.sampled_from(["true", "false", ":"]))
    if shape == "printf":
        return f"printf %s {quoted(text)}"
    if shape == "printf line":
        return f"printf '%s\\n' {quoted(text)}"
    if shape == "echo then exit":
        return f"echo {quoted(text)}; exit {draw(st.integers(0, 255))}"
    if shape == "close stdout":
        return "exec 1>&-; read line"
    if shape == "cat":
        return "head -n 1"  # the hello, echoed back: not a reply
    if shape == "kill itself":
        return f"kill -{draw(st.sampled_from(['TERM', 'KILL', 'SEGV']))} $$"
    if shape == "syntax":
        return f"{quoted(text)} {draw(st.sampled_from(SYNTAX))}"
    if shape == "long":
        return missing("x" * draw(st.sampled_from([4096, 200_000])))
    if shape == "nul bytes":
        return "head -c 64 /dev/zero; exit 1"
    return draw(st.sampled_from(["", " ", "\t", "  \n  "]))


@sizes(40, 400)
def test_a_proxy_that_cannot_start_is_exit_3_in_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inputs: Inputs, examples: int
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--target", "local:external", *SMALL_RUN]

    @fuzz_settings(examples)
    @given(proxy_commands())
    @example(missing("\ud800"))  # no file system encoding has it
    @example(missing("\udcff"))  # the byte 0xff, as Python reads it from a command line
    def one(command: str) -> None:
        err = io.StringIO()
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            code = main([*argv, f"--proxy-command={command}"])  # '=': it may start with '-'
        lines = err.getvalue().splitlines()
        assert "Traceback" not in err.getvalue() and lines, lines
        assert lines[-1].startswith("harness: "), lines
        if not command.strip() or not encodable(command):
            assert code == 2 and len(lines) == 1, (code, lines)
            inputs.tried("empty or not encodable: exit 2")
            return
        assert code == 3, (code, lines)
        assert "the proxy could not start" in lines[-1] or "cannot start" in lines[-1], lines
        prefix = PREFIX.search(err.getvalue())
        assert prefix is not None, lines
        assert clean(prefix.group(1)) == [], "harness clean found what the run left"
        assert leftovers(prefix.group(1)) == []
        inputs.tried("could not start: exit 3")

    one()
    inputs.at_least(examples)
