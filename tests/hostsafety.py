"""Proof that a test left the root network namespace alone: a snapshot before, a diff after.

The local cluster promises never to change the root namespace (`harness.local.cluster`): no
link, address, route, policy rule, firewall rule or sysctl of ours, ever. `root_snapshot()` reads
all of those, `root_untouched()` compares a snapshot taken before a block with one taken after it
and fails with a unified diff naming every line that changed.

What is compared, in the root namespace only (read-only commands, never a write):

| section   | read with                                     | normalised                          |
|-----------|-----------------------------------------------|-------------------------------------|
| link      | `ip -o link`                                  | as is                               |
| addr      | `ip -o addr`                                  | address lifetimes dropped           |
| route     | `ip -4/-6 route show table all`               | route expiry timers dropped         |
| rule      | `ip -4/-6 rule`                               | as is                               |
| iptables  | `iptables-save`, `ip6tables-save` (and the    | comments and packet/byte counters   |
|           | legacy backend's, when it has tables)         | dropped                             |
| nft       | `nft -s list ruleset` (stateless: no counters)| set element expiry timers dropped   |
| sysctl    | every readable file under /proc/sys/net       | see below                           |

Other engineers run tests on this machine at the same time, so the comparison must not fail on
what their runs, or the machine itself, change meanwhile:

- Counters and timers (packet counters, address and route lifetimes, conntrack's entry count) are
  never compared: they change with anyone's traffic, not with configuration.
- The neighbour table and conntrack table are not compared: they follow traffic (including other
  people's loopback tests in the root namespace), and neither is configuration the harness sets.
- A sysctl that exists in only one of the two snapshots is a kernel module loaded or unloaded
  meanwhile, which is machine-wide and triggered by anyone's namespaced rules (the first `nft`
  rule of a kind loads its module); only values of keys present in both are compared, and the
  lists of loaded algorithms (`*_available_*`, `tcp_allowed_congestion_control`) are skipped.
- A correct harness run changes nothing in the root namespace, so other people's runs change
  nothing either, except through a bug of theirs. To keep such a bug from being blamed on this
  test, a line that names only objects of *other* runs is left out: a run is another's when it is
  still present at the end of the block (its namespaces under /run/netns, or its work directory),
  because every run this test made has been closed and cleaned by then (the `prefix` fixture
  asserts so). A line naming a run that is gone by the end is compared: whoever leaked it,
  something left the root namespace changed.

Everything else changing in the root namespace during a test (Docker, DHCP, an administrator) would
fail it; none of those run on the machines this suite runs on.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.local.names import NETNS_DIR, run_of

RUN_NAME = re.compile(r"(?<![0-9a-z])hk[0-9a-f]{5}")
COUNTERS = re.compile(r"\[\d+:\d+\]")
LIFETIMES = re.compile(r"\s*(valid|preferred)_lft \S+")
EXPIRY = re.compile(r"\s*expires \S+")
SYSCTL_ROOT = Path("/proc/sys/net")
VOLATILE_SYSCTLS = re.compile(
    r"^net\.netfilter\.nf_conntrack_count$"  # entries now, a counter
    r"|_available_"  # lists of loaded modules (congestion control, ...)
    r"|^net\.ipv4\.tcp_allowed_congestion_control$"
)
COMMAND_TIMEOUT_S = 30.0
FAMILIES = ("-4", "-6") if Path("/proc/sys/net/ipv6").exists() else ("-4",)  # kernel without IPv6


@dataclass(frozen=True)
class RootSnapshot:
    """The root namespace's configuration, one tuple of normalised lines per section.

    `sysctls` maps every readable key under /proc/sys/net (dotted) to its value.
    """

    sections: Mapping[str, tuple[str, ...]]
    sysctls: Mapping[str, str]


def _output(*argv: str) -> str:
    """The command's standard output; "" when the tool is not installed (nothing to compare)."""
    if shutil.which(argv[0]) is None:
        return ""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()[:300]}")
    return done.stdout


def _legacy_tables(family: str) -> str:
    """The legacy (x_tables) backend's rules, read only when it has tables: asking for a table
    by name would load its module."""
    names = Path(f"/proc/thread-self/net/{family}_tables_names")  # this thread's namespace
    try:
        present = names.read_text().strip()
    except OSError:
        return ""
    tool = "iptables-legacy-save" if family == "ip" else "ip6tables-legacy-save"
    return _output(tool) if present else ""


def _rules(text: str) -> list[str]:
    return [COUNTERS.sub("", line) for line in text.splitlines() if not line.startswith("#")]


SECTIONS: Mapping[str, Callable[[], list[str]]] = {
    "link": lambda: _output("ip", "-o", "link").splitlines(),
    "addr": lambda: [LIFETIMES.sub("", line) for line in _output("ip", "-o", "addr").splitlines()],
    "route": lambda: [
        EXPIRY.sub("", line)
        for family in FAMILIES
        for line in _output("ip", family, "route", "show", "table", "all").splitlines()
    ],
    "rule": lambda: [
        line for family in FAMILIES for line in _output("ip", family, "rule").splitlines()
    ],
    "iptables": lambda: [
        *_rules(_output("iptables-save")),
        *(_rules(_output("ip6tables-save")) if "-6" in FAMILIES else []),
        *_rules(_legacy_tables("ip")),
        *_rules(_legacy_tables("ip6")),
    ],
    "nft": lambda: [
        EXPIRY.sub("", line) for line in _output("nft", "-s", "list", "ruleset").splitlines()
    ],
}


def read_sysctls(root: Path = SYSCTL_ROOT) -> dict[str, str]:
    """Every readable sysctl under `root` (the calling thread's namespace), by dotted key.

    Write-only and unreadable keys (`route.flush`, `stable_secret` before it is set) are skipped.
    """
    values = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            try:
                value = path.read_text()
            except OSError:
                continue
            key = "net." + ".".join(path.relative_to(root).parts)
            values[key] = " ".join(value.split())
    return values


def root_snapshot() -> RootSnapshot:
    """Read the root namespace's configuration (see the module docstring). Needs root; reads
    only, and must be called from a thread in the root namespace (the test's main thread)."""
    sections = {name: tuple(read()) for name, read in SECTIONS.items()}
    return RootSnapshot(sections, read_sysctls())


def present_runs() -> set[str]:
    """Run prefixes with a namespace under /run/netns or a work directory in the temp dir."""
    names: list[str] = []
    for directory in (NETNS_DIR, tempfile.gettempdir()):
        try:
            names += os.listdir(directory)
        except FileNotFoundError:
            continue
    return {run for name in names if (run := run_of(name)) is not None}


def _others_only(line: str, others: set[str]) -> bool:
    """Whether the line names runs, all of which are in `others`."""
    named = set(RUN_NAME.findall(line))
    return bool(named) and named <= others


def root_changes(before: RootSnapshot, after: RootSnapshot, others: set[str]) -> list[str]:
    """The unified diff (one list of lines, sections labelled) from `before` to `after`, leaving
    out lines that name only runs in `others` and the sysctls the module docstring exempts.
    Empty when nothing changed. Pure."""
    diff: list[str] = []
    sysctl_keys = sorted(
        key
        for key in before.sysctls.keys() & after.sysctls.keys()
        if not VOLATILE_SYSCTLS.search(key)
    )
    old_sysctls = tuple(f"{key} = {before.sysctls[key]}" for key in sysctl_keys)
    new_sysctls = tuple(f"{key} = {after.sysctls[key]}" for key in sysctl_keys)
    pairs = [(name, before.sections[name], after.sections[name]) for name in before.sections]
    for name, old, new in [*pairs, ("sysctl", old_sysctls, new_sysctls)]:
        old_kept = [line for line in old if not _others_only(line, others)]
        new_kept = [line for line in new if not _others_only(line, others)]
        if old_kept != new_kept:
            diff += difflib.unified_diff(
                old_kept, new_kept, f"{name} before", f"{name} after", n=1, lineterm=""
            )
    return diff


class RootGuard:
    """A snapshot of the root namespace taken at construction, to compare against later."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.before = root_snapshot()

    def check(self, own: Collection[str] = ()) -> None:
        """AssertionError with the diff if the root namespace differs from the snapshot.

        `own`: run prefixes of the caller's that may still be present (a check in the middle of
        a run): lines naming them are compared even though their namespaces exist.
        """
        changes = root_changes(self.before, root_snapshot(), present_runs() - set(own))
        if changes:
            shown = "\n".join(changes[:200])
            raise AssertionError(f"{self.what} changed the root network namespace:\n{shown}")


@contextmanager
def root_untouched(what: str = "the block") -> Iterator[None]:
    """Fail (AssertionError with the diff) if the root namespace's configuration differs after
    the block from before it. The check runs only when the block ends without an exception, so
    it never hides the block's own error. For the conformance suite: wrap the session in it."""
    guard = RootGuard(what)
    yield
    guard.check()
