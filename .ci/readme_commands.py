"""The README's two commands for a fresh machine, read from README.md itself.

`.ci/run` and the test suite (`tests/install/test_readme.py`) run what this prints, so the
commands CI runs and the commands the README shows are the same text and cannot drift.

The README's first ```sh block holds the two commands, each on the first line after its comment:

    # 1. ...                      set up, then run the main job
    apt-get ... && .venv/bin/harness run
    # 2. ...                      run the tests
    .venv/bin/tox -e lint,unit,conformance

The first command's last `&& ...` part is its main job (`.venv/bin/harness run ...`); what comes
before it is the set-up.

Usage: python3 .ci/readme_commands.py first|setup|main|tests|path [README]
Prints one line: a command, or (`path`) the PATH of a fresh Debian root shell, under which the
commands must work. A README without that shape gets one line naming the problem, exit 2.

It runs under Debian's /usr/bin/python3 before any virtual environment exists, so it uses the
standard library only. It only reads: it never runs a command and never writes a file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

FRESH_DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH of root's login shell on a fresh Debian 12: no pyenv, no conda, nothing but Debian."""

MAIN_JOB = ".venv/bin/harness run"
"""How the first command's main job starts: the harness from the virtual environment it made."""

README = Path(__file__).resolve().parents[1] / "README.md"


class ReadmeShapeError(Exception):
    """README.md does not hold the two commands where this module looks for them."""


@dataclass(frozen=True)
class ReadmeCommands:
    """The two commands, verbatim, and the first one's two parts."""

    first: str
    tests: str

    @property
    def setup(self) -> str:
        """The first command without its main job."""
        return self.first.rpartition(" && ")[0]

    @property
    def main(self) -> str:
        """The first command's main job (`.venv/bin/harness run ...`)."""
        return self.first.rpartition(" && ")[2]


def first_shell_block(text: str) -> list[str]:
    """The lines inside the first ```sh fence of `text`; ReadmeShapeError if there is none."""
    lines = text.splitlines()
    try:
        start = lines.index("```sh") + 1
        end = lines.index("```", start)
    except ValueError:
        raise ReadmeShapeError("no ```sh block with the set-up commands") from None
    return lines[start:end]


def command_after(block: list[str], label: str) -> str:
    """The first non-comment line after the comment line that starts with `# {label}`."""
    for index, line in enumerate(block):
        if line.startswith(f"# {label}"):
            following = [text for text in block[index + 1 :] if text.strip()]
            if following and not following[0].startswith("#"):
                return following[0].strip()
            raise ReadmeShapeError(f"no command on the line after '# {label}'")
    raise ReadmeShapeError(f"the ```sh block has no '# {label}' comment")


def read_commands(readme: Path = README) -> ReadmeCommands:
    """The README's two commands; ReadmeShapeError if they are missing or the first one does
    not end with its main job."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as error:
        raise ReadmeShapeError(f"cannot read {readme}: {error.strerror}") from None
    try:
        block = first_shell_block(text)
        first, tests = command_after(block, "1."), command_after(block, "2.")
    except ReadmeShapeError as error:
        raise ReadmeShapeError(f"{readme}: {error}") from None
    commands = ReadmeCommands(first=first, tests=tests)
    if " && " not in first or not commands.main.startswith(MAIN_JOB):
        raise ReadmeShapeError(
            f"{readme}: command 1 must end with '&& {MAIN_JOB}' (its main job), "
            "so that CI can run the set-up alone"
        )
    return commands


def main(argv: list[str]) -> int:
    """Print what argv[0] names; 0 on success, 2 with one line on stderr otherwise."""
    choices = ("first", "setup", "main", "tests", "path")
    if not argv or argv[0] not in choices or len(argv) > 2:
        print(f"usage: readme_commands.py {'|'.join(choices)} [README]", file=sys.stderr)
        return 2
    if argv[0] == "path":
        print(FRESH_DEBIAN_PATH)
        return 0
    try:
        commands = read_commands(Path(argv[1]) if len(argv) == 2 else README)
    except ReadmeShapeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(getattr(commands, argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
