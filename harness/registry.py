"""Finding targets and proxies by name: entry points, plus the harness's own mutants.

Targets are named `NAME[:ARG]` on the command line (`model`, `local:nftables`, `kube`,
`mutant:first-endpoint`). Each target class registered under the entry-point group
`harness.targets` provides `description` and `from_spec(arg, options)`. Proxies are classes
registered under `harness.proxies` (the public plug-in point for candidate proxies) plus the
deliberately broken ones in `harness.proxies.mutants`, which are listed as mutants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from harness.errors import UsageError

TARGET_GROUP = "harness.targets"
PROXY_GROUP = "harness.proxies"
POD_MODES = ("cluster", "local")
"""`--pods`: the kube target's pods on the cluster's kubelets, or local network namespaces."""


@dataclass(frozen=True)
class TargetOptions:
    """Everything the command line can say about a target; each target reads what it needs."""

    proxy_command: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    kind_cluster: str | None = None
    keep_cluster: bool = False
    pods: str = "cluster"
    read_node_rules: str | None = None  # --pods cluster: the reader pods' image; None: not allowed
    prefix: str | None = None
    workdir: Path | None = None
    deadline_s: float = 30.0
    nodes: int | None = None  # local targets: node namespaces (None: the target's default)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    load: Callable[[], Any]
    mutant: bool = False


def _entry_points(group: str) -> dict[str, Entry]:
    found = {}
    for point in entry_points(group=group):
        found[point.name] = Entry(point.name, "", point.load)
    return found


def _describe(entry: Entry) -> Entry:
    try:
        obj = entry.load()
    except Exception as error:  # an installed plug-in that fails to import is reported, not fatal
        return Entry(entry.name, f"(fails to load: {error})", entry.load, entry.mutant)
    text = getattr(obj, "description", "") or (obj.__doc__ or "").strip().splitlines()[0]
    return Entry(entry.name, text, entry.load, entry.mutant)


def targets() -> dict[str, Entry]:
    """Every installed target, with its description."""
    found = _entry_points(TARGET_GROUP)
    found["mutant"] = Entry("mutant", "", _load_mutant_target, mutant=True)
    return {name: _describe(entry) for name, entry in sorted(found.items())}


def _load_mutant_target() -> Any:
    from harness.targets.mutants import MutantTarget

    return MutantTarget


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def proxies(include_mutants: bool = True) -> dict[str, Entry]:
    """Every installed proxy (entry points), and the harness's mutant proxies."""
    found = _entry_points(PROXY_GROUP)
    if include_mutants:
        try:
            from harness.proxies.mutants import MUTANT_PROXIES
        except ImportError:
            MUTANT_PROXIES = {}
        for name, cls in MUTANT_PROXIES.items():
            found[name] = Entry(name, "", _constant(cls), mutant=True)
    return {name: _describe(entry) for name, entry in sorted(found.items())}


def load_proxy(name: str) -> Any:
    """The proxy class registered as `name`; UsageError naming the installed ones otherwise."""
    known = proxies()
    if name not in known:
        raise UsageError(
            f"unknown proxy {name!r}; installed: {', '.join(known)} (see `harness proxies`)"
        )
    return known[name].load()


def make_target(spec: str, options: TargetOptions | None = None) -> Any:
    """Build the target named by `spec` (`NAME[:ARG]`); UsageError for unknown names."""
    name, _, arg = spec.partition(":")
    known = targets()
    if name not in known:
        raise UsageError(
            f"unknown target {spec!r}; installed: {', '.join(known)} (see `harness targets`)"
        )
    cls = known[name].load()
    return cls.from_spec(arg or None, options or TargetOptions())
