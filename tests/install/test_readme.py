"""The README's two commands work as printed on a fresh machine (issue 14, part 1).

The commands are read from README.md by `.ci/readme_commands.py`, the same reader `.ci/run` uses,
never copied here. The slow test runs the first command verbatim, as root, in a throw-away copy
of the checkout, under a fresh Debian root's PATH (so `python3` is Debian's /usr/bin/python3 and
the venv is brand new). Its main job, `harness run`, is kept short by HARNESS_BUDGET=20s, the
default of `harness run --budget` (before that option exists the variable is ignored, and the
default search takes about 75 s here). The second command (the test suite) would run this test
again, so it is only shown to be runnable: the new venv's tox lists every environment it names.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READER = Path(".ci") / "readme_commands.py"
BUDGET = "20s"
FIRST_COMMAND_TIMEOUT_S = 900
"""Set-up (apt, a venv, pip with its cache) plus a 20 s main job take 2-4 minutes here."""


def readme_command(name: str, checkout: Path = ROOT, readme: Path | None = None) -> str:
    """What `.ci/readme_commands.py NAME` of `checkout` prints (one line, stripped)."""
    argv = [sys.executable, str(checkout / READER), name, *([str(readme)] if readme else [])]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# --- fast: the shape of the commands and of the docs' examples ---------------------------------


def test_first_command_makes_its_own_venv_from_debians_python() -> None:
    first = readme_command("first")
    assert "python3 -m venv .venv" in first
    assert "python3-venv" in first, "a fresh Debian has no venv module without python3-venv"
    installs = re.findall(r"(\S*)pip install", first)
    assert installs and all(prefix == ".venv/bin/" for prefix in installs), (
        f"every pip install must be the venv's (PEP 668 refuses the system's): {first}"
    )
    assert readme_command("main").startswith(".venv/bin/harness run")
    assert readme_command("tests") == ".venv/bin/tox -e lint,unit,conformance"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("# a project\n", "no ```sh block with the set-up commands"),
        ("```sh\n# 1. set up\napt-get update && .venv/bin/harness run\n```\n", "no '# 2.'"),
        (
            "```sh\n# 1. set up\napt-get update && harness run\n# 2. test\ntox\n```\n",
            "command 1 must end with '&& .venv/bin/harness run' (its main job)",
        ),
    ],
)
def test_reader_refuses_a_readme_without_the_commands_in_one_line(
    tmp_path: Path, text: str, complaint: str
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(text)
    result = subprocess.run(
        [sys.executable, str(ROOT / READER), "setup", str(readme)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {readme}: ") and complaint in lines[0]


SHOWN_COMMANDS = ["README.md", "tox.ini", "docs", "examples"]
WONT_WORK = {
    r"(?<![\w./-])python (?=[\w./-])": "a fresh Debian has no `python`: use .venv/bin/python3",
    r"\bsudo harness\b": "sudo's secure_path does not search a venv: use sudo .venv/bin/harness",
    r"(?<![\w./-])pip install (?=\S)": "PEP 668 refuses a bare pip install: use .venv/bin/pip",
}


def test_docs_show_no_command_that_fails_on_a_fresh_machine() -> None:
    files = [
        path
        for name in SHOWN_COMMANDS
        for path in ([ROOT / name] if (ROOT / name).is_file() else (ROOT / name).rglob("*"))
        if path.is_file() and path.suffix in {".md", ".py", ".ini", ""}
    ]
    assert any(path.name == "README.md" for path in files)
    found = [
        f"{path.relative_to(ROOT)}:{number}: {why}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for pattern, why in WONT_WORK.items()
        if re.search(pattern, line)
    ]
    assert found == []


# --- slow: the first command, verbatim, on a fresh copy ---------------------------------------


@dataclass(frozen=True)
class FreshRun:
    """What running the README's first command in a fresh copy gave."""

    checkout: Path
    command: str
    returncode: int
    output: str

    def tail(self) -> str:
        """The command and the end of its output, for an assertion's message."""
        return f"$ {self.command}\n...\n{self.output[-4000:]}"


def copy_checkout(destination: Path) -> None:
    """Copy what a clone of this work tree, with its changes committed, would hold: tracked and
    untracked-but-not-ignored files (no .venv, .tox or caches), and commit them there, so that
    `git status` in the copy shows what the README's command changed. Never writes into ROOT."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not copied
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    identity = ["-c", "user.name=test_readme", "-c", "user.email=test_readme@localhost"]
    for argv in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-q", "-m", "copy"]):
        subprocess.run(["git", *argv], cwd=destination, check=True, timeout=120)


def fresh_environment(checkout: Path) -> dict[str, str]:
    """This process's environment minus every trace of a Python environment (tox's venv, pyenv)
    and of HARNESS_* settings, under a fresh Debian root's PATH, with HARNESS_BUDGET set.
    The package registries' client settings (PIP_*, proxies) are kept: they are the machine's."""
    dropped = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYENV_", "CONDA_", "TOX_", "HARNESS_")
    environment = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    environment.update(
        PATH=readme_command("path", checkout),
        HARNESS_BUDGET=BUDGET,
        DEBIAN_FRONTEND="noninteractive",
    )
    return environment


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory: pytest.TempPathFactory) -> FreshRun:
    if os.geteuid() != 0:
        pytest.skip("the README's first command runs as root (apt-get, network namespaces)")
    if not (Path("/usr/bin/python3").exists() and shutil.which("apt-get")):
        pytest.skip("the README's first command is for Debian: needs apt-get and /usr/bin/python3")
    if not (shutil.which("git") and (ROOT / ".git").exists()):
        pytest.skip("needs git and a git checkout to copy the work tree")
    base = tmp_path_factory.mktemp("fresh")
    checkout = base / "svc-lb-harness"
    copy_checkout(checkout)
    apt_config = base / "apt.conf"
    apt_config.write_text('DPkg::Lock::Timeout "300";\n')
    command = readme_command("first", checkout)
    log = base / "first-command.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=checkout,
            # APT_CONFIG: wait for another engineer's apt-get instead of failing on its lock
            env={**fresh_environment(checkout), "APT_CONFIG": str(apt_config)},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to stop all of it on a timeout
        )
        try:
            returncode = process.wait(timeout=FIRST_COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            returncode = stop(process)
            output.write(f"\n(stopped after {FIRST_COMMAND_TIMEOUT_S} s)\n")
    return FreshRun(checkout, command, returncode, log.read_text(errors="replace"))


def stop(process: subprocess.Popen[bytes]) -> int:
    """Stop the command's whole process group: SIGTERM first, so that `harness run` removes
    what it made, then SIGKILL after 30 s. Returns -1."""
    for signal_number, grace_s in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal_number)
        try:
            process.wait(timeout=grace_s)
            break
        except subprocess.TimeoutExpired:
            continue
    return -1


@pytest.mark.slow
@pytest.mark.netns
def test_first_command_sets_up_and_runs_the_main_job(fresh_run: FreshRun) -> None:
    assert fresh_run.returncode == 0, fresh_run.tail()
    assert re.search(r"\bendpoints\b.*\bpassed\b", fresh_run.output), fresh_run.tail()


@pytest.mark.slow
def test_first_command_leaves_no_tracked_file_changed_and_nothing_unignored(
    fresh_run: FreshRun,
) -> None:
    assert fresh_run.returncode == 0, fresh_run.tail()
    status = subprocess.run(
        ["git", "status", "--porcelain"],
        cwd=fresh_run.checkout,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert status == "", f"the README's first command changed the checkout:\n{status}"


@pytest.mark.slow
def test_first_command_makes_the_venv_from_debians_python(fresh_run: FreshRun) -> None:
    assert fresh_run.returncode == 0, fresh_run.tail()
    config = (fresh_run.checkout / ".venv" / "pyvenv.cfg").read_text()
    assert re.search(r"^home = /usr/bin$", config, re.MULTILINE), config
    assert re.search(r"^include-system-site-packages = false$", config, re.MULTILINE), config


@pytest.mark.slow
def test_second_command_is_runnable(fresh_run: FreshRun) -> None:
    assert fresh_run.returncode == 0, fresh_run.tail()
    argv = shlex.split(readme_command("tests", fresh_run.checkout))
    assert argv[0] == ".venv/bin/tox" and argv[1] == "-e", argv
    listed = subprocess.run(
        [argv[0], "list", "--no-desc"],
        cwd=fresh_run.checkout,
        env=fresh_environment(fresh_run.checkout),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    missing = set(argv[2].split(",")) - set(listed.stdout.split())
    assert not missing, f"the venv's tox does not know {sorted(missing)}: {listed.stdout}"
