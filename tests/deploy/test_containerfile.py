"""deploy/Containerfile's invariants, checked by reading it (no container engine here; the nightly
workflow builds it): a pinned Debian 12 base, the project installed non-editable into a virtual
environment, nothing pip-installed into the system Python, a non-root user, `harness` as the
entrypoint."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.deploy.files import (
    CONTAINERFILE,
    ROOT,
    Instruction,
    base_images,
    image_reference,
    instructions,
    project_version,
    stages,
)

VENV = "/opt/harness"
EXACT_TAG = re.compile(r"^(?:[\w.-]+/)*python:(\d+)\.(\d+)\.(\d+)-slim-bookworm$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def final_stage() -> list[Instruction]:
    return stages()[-1]


def run_commands() -> list[list[str]]:
    """Every simple command of every RUN, split on `&&` and `;`, as words."""
    commands = []
    for instruction in instructions():
        if instruction.keyword != "RUN":
            continue
        for part in re.split(r"&&|;", instruction.argument):
            words = shlex.split(part.split(">")[0])
            if words:
                commands.append(words)
    return commands


def test_every_base_is_debian_12_slim_pinned_to_an_exact_version() -> None:
    images = base_images()
    assert images, "no FROM"
    for image in images:
        pinned = EXACT_TAG.match(image.split("@")[0]) or DIGEST.search(image)
        assert pinned, f"{image}: pin an exact python:X.Y.Z-slim-bookworm tag or a digest"
        assert "latest" not in image


def test_the_base_python_is_the_one_the_project_targets() -> None:
    (image,) = set(base_images())
    match = EXACT_TAG.match(image.split("@")[0])
    assert match is not None
    assert (match.group(1), match.group(2)) == ("3", "11")  # requires-python >= 3.11, ruff py311


def test_pip_only_runs_from_the_virtual_environment_and_installs_the_project_itself() -> None:
    commands = run_commands()
    assert ["python", "-m", "venv", VENV] in commands
    pip_runs = [words for words in commands if any(Path(w).name.startswith("pip") for w in words)]
    assert pip_runs, "the project is never installed"
    for words in pip_runs:
        assert words[0] == f"{VENV}/bin/pip", f"pip outside the venv: {' '.join(words)}"
        assert "-e" not in words and "--editable" not in words
        assert "--break-system-packages" not in words
    assert [f"{VENV}/bin/pip", "install", "."] in pip_runs


def test_the_project_sources_that_pip_needs_are_copied_and_exist() -> None:
    copied = [
        word
        for instruction in instructions()
        if instruction.keyword == "COPY" and "--from" not in instruction.argument
        for word in instruction.argument.split()[:-1]
    ]
    assert {"pyproject.toml", "README.md", "harness"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"


def test_the_final_image_runs_harness_as_an_unprivileged_user() -> None:
    stage = final_stage()
    (user,) = [i.argument for i in stage if i.keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, f"USER {user}: a numeric non-root uid"
    (entrypoint,) = [i.argument for i in stage if i.keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["harness"]
    environment = " ".join(i.argument for i in stage if i.keyword == "ENV")
    assert f"PATH={VENV}/bin:$PATH" in environment
    assert any(i.keyword == "COPY" and VENV in i.argument for i in stage)


def test_the_labelled_version_and_the_documented_tag_are_the_projects() -> None:
    labels = " ".join(i.argument for i in final_stage() if i.keyword == "LABEL")
    assert f'org.opencontainers.image.version="{project_version()}"' in labels
    text = CONTAINERFILE.read_text(encoding="utf-8")
    assert f"docker build -f deploy/Containerfile -t {image_reference()} ." in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FROM a:1 AS b\nRUN x \\\n  && y\n# c\nUSER 1", ["FROM", "RUN", "USER"]),
        ("# only a comment\n", []),
    ],
)
def test_the_reader_joins_continuations_and_drops_comments(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = tmp_path / "Containerfile"
    path.write_text(text, encoding="utf-8")
    assert [i.keyword for i in instructions(path)] == expected
