"""The deployment files as data, for the tests of tests/deploy: the container build file as a list
of instructions, the YAML manifests as documents, the project's version. Reads only."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
PLUGIN = ROOT / "deploy" / "sonobuoy-plugin.yaml"
RBAC = ROOT / "deploy" / "rbac.yaml"
KUBE_DOC = ROOT / "docs" / "kube.md"
IMAGE_NAME = "svc-lb-harness"


@dataclass(frozen=True)
class Instruction:
    """One instruction of a container build file: keyword (upper case) and its argument text."""

    keyword: str
    argument: str


def instructions(path: Path = CONTAINERFILE) -> list[Instruction]:
    """The file's instructions, comments dropped and backslash continuations joined."""
    joined: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, f"{path}: the last instruction ends in a backslash"
    result = []
    for line in joined:
        keyword, _, argument = line.partition(" ")
        result.append(Instruction(keyword.upper(), " ".join(argument.split())))
    return result


def stages(path: Path = CONTAINERFILE) -> list[list[Instruction]]:
    """The instructions grouped by build stage (each group starts with its FROM)."""
    groups: list[list[Instruction]] = []
    for instruction in instructions(path):
        if instruction.keyword == "FROM":
            groups.append([])
        if groups:
            groups[-1].append(instruction)
    return groups


def build_args(path: Path = CONTAINERFILE) -> dict[str, str]:
    """The ARG defaults declared before the first FROM (the ones FROM may use)."""
    defaults: dict[str, str] = {}
    for instruction in instructions(path):
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, value = instruction.argument.partition("=")
            defaults[name] = value
    return defaults


def base_images(path: Path = CONTAINERFILE) -> list[str]:
    """The image each FROM names, with ARG defaults substituted and any `AS name` dropped; a FROM
    naming an earlier stage is left out."""
    defaults = build_args(path)
    names: list[str] = []
    images: list[str] = []
    for stage in stages(path):
        words = stage[0].argument.split()
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), words[0])
        if image not in names:
            images.append(image)
        if len(words) == 3 and words[1].lower() == "as":
            names.append(words[2])
    return images


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of `path`."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def project_version() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return str(data["project"]["version"])


def image_reference() -> str:
    """The image name and tag the build file, the plugin and the docs agree on."""
    return f"{IMAGE_NAME}:{project_version()}"
