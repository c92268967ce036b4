"""The version lines of the tools a target runs (`iptables --version`, `nginx -v`, ...).

Reads only: each probe runs one bounded `--version`-style command in the harness's own namespace
and changes nothing. A missing binary or a probe that fails or hangs gives "unknown", never an
error: versions annotate results, they never decide them.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import PurePath

UNKNOWN = "unknown"
PROBE_TIMEOUT_S = 5.0
MAX_LINE = 200

PROXY_TOOLS: dict[str, tuple[str, ...]] = {
    "iptables": ("iptables", "--version"),
    "nftables": ("nft", "--version"),
    "nginx": ("nginx", "-v"),
    "haproxy": ("haproxy", "-v"),
}
"""The command that prints the version of the tool behind each of the harness's own proxies
(by registered name; nginx prints to stderr). The userspace proxy is the harness itself."""


def tool_version(argv: Sequence[str]) -> str:
    """The first non-empty output line of `argv` (stdout, else stderr), at most `MAX_LINE`
    characters; "unknown" if the binary is missing, fails or takes over `PROBE_TIMEOUT_S`."""
    if not argv or shutil.which(argv[0]) is None:
        return UNKNOWN
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    for line in (done.stdout + "\n" + done.stderr).splitlines():
        if line.strip():
            return line.strip()[:MAX_LINE] if done.returncode == 0 else UNKNOWN
    return UNKNOWN


def proxy_tool(proxy: object) -> tuple[str, ...] | None:
    """The version command for `proxy`: the first class in its MRO registered under a name of
    `PROXY_TOOLS` (so a mutant of the iptables proxy reports iptables); None for others."""
    for cls in type(proxy).__mro__:
        name = vars(cls).get("name")
        if isinstance(name, str) and name in PROXY_TOOLS:
            return PROXY_TOOLS[name]
    return None


def proxy_version(proxy: object) -> str:
    """One line naming `proxy` and its version: what an external candidate declared in its
    `hello` reply (`declared_version`), the tool behind one of the harness's own proxies
    (`iptables v1.8.9 (nf_tables)`), or the harness itself for proxies written in it."""
    from harness import __version__

    name = str(getattr(proxy, "name", "") or type(proxy).__name__)
    if hasattr(proxy, "declared_version"):
        declared = getattr(proxy, "declared_version", None)
        return f"{name}: {declared}" if declared else f"{name}: {UNKNOWN} (not declared in hello)"
    tool = proxy_tool(proxy)
    if tool is not None:
        return f"{name}: {tool_version(tool)}"
    return f"{name}: harness {__version__}"


def proxy_command_version(command: str | None) -> str:
    """The `--version` line of the kube-proxy binary a `--proxy-command` runs (the first word
    named kube-proxy* or harness-kube-proxy, the harness's stand-in, wherever the shell command
    has it). Other commands are not run with `--version` (an arbitrary program may not take it),
    so they give "unknown" and say why."""
    if not command:
        return f"{UNKNOWN} (no --proxy-command)"
    try:
        words = list(shlex.shlex(command, posix=True, punctuation_chars=True))
    except ValueError:
        return f"{UNKNOWN} (the proxy command does not parse)"
    for word in words:
        if PurePath(word).name.startswith(("kube-proxy", "harness-kube-proxy")):
            return tool_version([word, "--version"])
    return f"{UNKNOWN} (not kube-proxy; only kube-proxy is asked for --version)"
