"""Running rule tools (iptables-restore, nft, conntrack) inside the node's network namespace.

Every command runs as `nsenter --net=/run/netns/NETNS -- TOOL ...`, so the root namespace is never
touched. Failures become `EnvironmentProblem` with one line: which tool, which namespace, and the
first line the tool printed (a missing binary, a missing namespace, a kernel refusal).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.errors import EnvironmentProblem

NETNS_DIR = Path("/run/netns")
COMMAND_TIMEOUT_S = 30.0
LINES_PER_EXTRA_SECOND = 1000


def transaction_timeout_s(payload: str) -> float:
    """How long a rule command may take to apply `payload`: `COMMAND_TIMEOUT_S`, plus one
    second per `LINES_PER_EXTRA_SECOND` lines. The kernel's share of a large nftables
    transaction grows faster than its size (each new anonymous set, one per Service chain's
    `numgen` vmap, is named by a walk over every set of the table: `nf_tables_set_alloc_name`),
    so a full sync of 10,000 endpoints (45,000 lines) took 21 to 23 s on a quiet 2-core VM and
    over 30 s beside other test runs. Still a bound: a hung tool is stopped."""
    return COMMAND_TIMEOUT_S + payload.count("\n") / LINES_PER_EXTRA_SECOND


PACKAGES = {
    "iptables-restore": "iptables",
    "iptables-save": "iptables",
    "nft": "nftables",
    "conntrack": "conntrack",
    "nsenter": "util-linux",
    "ip": "iproute2",
}


def require_binaries(names: Iterable[str]) -> None:
    """Raise EnvironmentProblem naming the Debian package of the first binary not on PATH."""
    for name in names:
        if shutil.which(name) is None:
            package = PACKAGES.get(name, name)
            raise EnvironmentProblem(f"`{name}` is not installed (apt-get install {package})")


def require_netns(netns: str) -> None:
    """Raise EnvironmentProblem when the named network namespace does not exist."""
    if not (NETNS_DIR / netns).exists():
        raise EnvironmentProblem(f"network namespace {netns!r} does not exist")


def run_in_netns(
    netns: str,
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    ok_codes: tuple[int, ...] = (0,),
    timeout_s: float = COMMAND_TIMEOUT_S,
) -> str:
    """Run `argv` inside `netns` and return its standard output.

    An exit code outside `ok_codes`, a timeout or a missing binary raises EnvironmentProblem with
    one line. Nothing runs in the root namespace: if the namespace is gone, nsenter fails.
    """
    command = ["nsenter", f"--net={NETNS_DIR / netns}", "--", *argv]
    try:
        done = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError:
        raise EnvironmentProblem("`nsenter` is missing (apt-get install util-linux)") from None
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(
            f"`{argv[0]}` in namespace {netns} did not finish within {timeout_s:.0f} s"
        ) from None
    if done.returncode not in ok_codes:
        raise EnvironmentProblem(
            f"`{argv[0]}` in namespace {netns} failed (exit {done.returncode}): "
            f"{first_line(done.stderr or done.stdout)}"
        )
    return done.stdout


def first_line(text: str) -> str:
    """The first non-empty line of a tool's output, or a placeholder."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "(no message)"
