"""Root without the capabilities namespaces need (an unprivileged container) gets the same clear
one-line message as a user without root, exit 3, and nothing is made; local:loopback still runs.

The capabilities are dropped from the bounding set with `setpriv` (util-linux), so the harness
process really lacks them, as uid 0 in a container started without them does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.local.names import PREFIX_REQUEST_ENVIRONMENT, new_prefix
from tests.local.conftest import needs_root
from tests.local.runs import HARNESS, leftovers

pytestmark = [pytest.mark.netns, needs_root]


def without(capabilities: str, argv: list[str], prefix: str) -> subprocess.CompletedProcess[str]:
    """Run `argv` as root without `capabilities` (setpriv's list, e.g. `-net_admin`)."""
    command = ["setpriv", "--inh-caps=-all", f"--bounding-set={capabilities}", "--", *argv]
    environment = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", PREFIX_REQUEST_ENVIRONMENT: prefix}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)


@pytest.mark.parametrize(
    ("dropped", "missing"),
    [
        ("-net_admin", "CAP_NET_ADMIN"),
        ("-sys_admin", "CAP_SYS_ADMIN"),
        ("-net_admin,-sys_admin", "CAP_NET_ADMIN and CAP_SYS_ADMIN"),
    ],
)
@pytest.mark.parametrize("proxy", ["iptables", "userspace"])
def test_root_without_capabilities_gets_one_clear_line(
    dropped: str, missing: str, proxy: str, tmp_path: Path
) -> None:
    prefix = new_prefix()
    argv = [HARNESS, "run", "--target", f"local:{proxy}", "--examples", "1"]
    done = without(dropped, [*argv, "--failures-dir", str(tmp_path)], prefix)
    assert done.returncode == 3, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("harness: the local target needs root with CAP_NET_ADMIN")
    assert f"lacks {missing} (" in last and "or use --target local:loopback" in last
    assert "Traceback" not in done.stderr and "ip batch failed" not in done.stderr
    assert leftovers(prefix) == []


def test_the_check_alone_names_what_is_missing() -> None:
    check = "from harness.targets.local import check_environment; check_environment()"
    done = without("-sys_admin", [sys.executable, "-c", check], new_prefix())
    assert "EnvironmentProblem" in done.stderr and "lacks CAP_SYS_ADMIN (" in done.stderr
    with_all = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert with_all.returncode == 0, with_all.stderr


def test_loopback_runs_without_them(tmp_path: Path) -> None:
    argv = [HARNESS, "run", "--target", "local:loopback", "--examples", "2", "--seed", "1"]
    argv += ["--focus", "^endpoints$", "--failures-dir", str(tmp_path)]
    prefix = new_prefix()
    done = without("-net_admin,-sys_admin", argv, prefix)
    assert done.returncode == 0, done.stderr
    assert leftovers(prefix) == []
