"""A Service's kernel objects in a proxy's own syntax, and the difference between two syncs.

Partial sync (KEP-3453, `pkg/proxy/iptables/proxier.go` "partial sync"; the nftables proxier's
per-Service transactions) means: write only what changed. Each proxy renders a Service into
chains (owned by that Service alone), entries in shared containers (the rules of `KUBE-SERVICES`,
the elements of the `service-ips` verdict map) and named sets (nftables affinity sets). `diff`
compares two renderings of the same Service; the proxy turns the result into one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Lines = tuple[str, ...]


@dataclass(frozen=True)
class Rendering:
    """What one Service needs in the kernel.

    - `chains`: chain name to its rule lines; each chain belongs to this Service only.
    - `entries`: shared container (a chain or a map every Service writes into) to this Service's
      entries in it, as key to value (a rule line with an empty value, or a map key and verdict).
    - `sets`: named set to its declaration.
    """

    chains: Mapping[str, Lines] = field(default_factory=dict)
    entries: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    sets: Mapping[str, str] = field(default_factory=dict)


EMPTY = Rendering()


@dataclass
class Delta:
    """What one sync changes, merged over every changed Service.

    `chains_written` holds only chains whose rules differ (or that are new), with `existing`
    naming those of them already in the kernel; `chains_deleted` are chains no Service needs any
    more. Entries are added and removed per container; a changed value is a removal and an
    addition. A set whose declaration changed is deleted and added again, so every chain of its
    Service is rewritten (the rules referencing it must let go of it first).
    """

    chains_written: dict[str, Lines] = field(default_factory=dict)
    existing: set[str] = field(default_factory=set)
    chains_deleted: set[str] = field(default_factory=set)
    entries_added: dict[str, dict[str, str]] = field(default_factory=dict)
    entries_removed: dict[str, dict[str, str]] = field(default_factory=dict)
    sets_added: dict[str, str] = field(default_factory=dict)
    sets_deleted: set[str] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not (
            self.chains_written
            or self.chains_deleted
            or self.entries_added
            or self.entries_removed
            or self.sets_added
            or self.sets_deleted
        )

    @property
    def containers_changed(self) -> set[str]:
        return set(self.entries_added) | set(self.entries_removed)

    def add(self, old: Rendering, new: Rendering) -> None:
        """Merge in the difference between `old` and `new` renderings of one Service."""
        sets_changed = {name for name, decl in old.sets.items() if new.sets.get(name, decl) != decl}
        for name, lines in new.chains.items():
            if sets_changed or old.chains.get(name) != lines:
                self.chains_written[name] = lines
                if name in old.chains:
                    self.existing.add(name)
        self.chains_deleted |= set(old.chains) - set(new.chains)
        for container in set(old.entries) | set(new.entries):
            before = old.entries.get(container, {})
            after = new.entries.get(container, {})
            removed = {k: v for k, v in before.items() if after.get(k) != v}
            added = {k: v for k, v in after.items() if before.get(k) != v}
            if removed:
                self.entries_removed.setdefault(container, {}).update(removed)
            if added:
                self.entries_added.setdefault(container, {}).update(added)
        self.sets_deleted |= (set(old.sets) - set(new.sets)) | sets_changed
        self.sets_added.update(
            {name: decl for name, decl in new.sets.items() if old.sets.get(name) != decl}
        )


def container_entries(renderings: Iterable[Rendering], container: str) -> dict[str, str]:
    """Every Service's entries in one shared container, in a stable order."""
    merged: dict[str, str] = {}
    for rendering in renderings:
        merged.update(rendering.entries.get(container, {}))
    return dict(sorted(merged.items()))


def merged(renderings: Iterable[Rendering]) -> Rendering:
    """Several Services' renderings as one (their chains and sets are disjoint; shared
    containers' entries are joined): the `new` side of a sync that replaces everything."""
    chains: dict[str, Lines] = {}
    entries: dict[str, dict[str, str]] = {}
    sets: dict[str, str] = {}
    for rendering in renderings:
        chains.update(rendering.chains)
        sets.update(rendering.sets)
        for container, added in rendering.entries.items():
            entries.setdefault(container, {}).update(added)
    return Rendering(chains, entries, sets)
