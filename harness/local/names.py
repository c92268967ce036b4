"""Run prefixes and the names of everything a local-cluster run creates.

Every namespace, interface, process marker and temporary directory of a run starts with the run's
prefix, `hk` plus five hex digits (`hk3fa9c`), so that `harness.local.cleanup.clean` can find what a
crashed run left by name alone. Interface names must fit the kernel's 15 characters (IFNAMSIZ - 1),
which is why the prefix is short and interface suffixes are hex counters.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass

from harness.errors import UsageError

BASE_PREFIX = "hk"
RUN_PATTERN = re.compile(r"^(hk[0-9a-f]{5})(?:[-.]|$)")
"""A name belongs to a run when it starts with a run prefix followed by `-`, `.` or nothing."""

PREFIX_ENVIRONMENT = "HARNESS_RUN_PREFIX"
"""Set in the environment of every process a run starts, so cleanup can find the process."""

IFNAME_MAX = 15
NETNS_DIR = "/run/netns"


PREFIX_REQUEST_ENVIRONMENT = "HARNESS_NEW_RUN_PREFIX"
"""A run prefix in this variable becomes the process's next `new_prefix()`, once (the variable is
removed, so helpers and later runs do not inherit it): a test that starts `harness run` knows the
run's prefix before the run makes anything."""


def new_prefix() -> str:
    """A fresh run prefix: `hk` and five random hex digits (about a million runs apart), or the
    one requested in PREFIX_REQUEST_ENVIRONMENT (UsageError if it is not a run prefix)."""
    requested = os.environ.pop(PREFIX_REQUEST_ENVIRONMENT, None)
    if requested is not None:
        if run_of(requested) != requested:
            raise UsageError(
                f"{PREFIX_REQUEST_ENVIRONMENT}={requested!r} is not a run prefix ('hk' and five"
                " hex digits, e.g. hk3fa9c)"
            )
        return requested
    return f"{BASE_PREFIX}{secrets.token_hex(3)[:5]}"


def run_of(name: str) -> str | None:
    """The run prefix a name belongs to, or None for a name no run made."""
    match = RUN_PATTERN.match(name)
    return match.group(1) if match else None


def check_prefix(prefix: str) -> str:
    """`prefix` if it is a whole run prefix; ValueError otherwise (it would not fit or be found)."""
    if run_of(prefix) != prefix:
        raise ValueError(f"run prefix {prefix!r} must be 'hk' and five hex digits, e.g. hk3fa9c")
    return prefix


def _ifname(name: str) -> str:
    if len(name) > IFNAME_MAX:
        raise ValueError(f"interface name {name!r} is longer than {IFNAME_MAX} characters")
    return name


@dataclass(frozen=True)
class RunNames:
    """The names one run uses. Pure: building names creates nothing."""

    prefix: str

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    @property
    def node_netns(self) -> str:
        return f"{self.prefix}-node"

    def node_netns_of(self, number: int) -> str:
        """Node `number`'s namespace (1-based): node 1 keeps `node_netns`, node k is
        `<prefix>-node<k>`."""
        return self.node_netns if number == 1 else f"{self.prefix}-node{number}"

    @property
    def fabric_netns(self) -> str:
        """The namespace of the bridge that joins the nodes (only with more than one node)."""
        return f"{self.prefix}-net"

    @property
    def fabric_bridge(self) -> str:
        return _ifname(f"{self.prefix}fb")

    @property
    def fabric_link(self) -> str:
        """A node's end of its link to the fabric (the same name in every node namespace)."""
        return _ifname(f"{self.prefix}fab")

    @property
    def external_netns(self) -> str:
        """The external client's namespace, on the fabric (only with more than one node)."""
        return f"{self.prefix}-ext"

    @property
    def external_port(self) -> str:
        """The fabric's end of the external client's link, a port of `fabric_bridge`."""
        return _ifname(f"{self.prefix}nx")

    def fabric_port(self, number: int) -> str:
        """The fabric's end of node `number`'s link, a port of `fabric_bridge`."""
        return _ifname(f"{self.prefix}n{number:x}")

    @property
    def bridge(self) -> str:
        return _ifname(f"{self.prefix}br")

    @property
    def service_sink(self) -> str:
        """The node's device the Service range is routed to (`harness.local.cluster`): one end
        of a veth pair whose other end, `service_sink_peer`, stays down."""
        return _ifname(f"{self.prefix}sv")

    @property
    def service_sink_peer(self) -> str:
        return _ifname(f"{self.prefix}sp")

    def pod_netns(self, number: int) -> str:
        return f"{self.prefix}-p{number:x}"

    def pod_veth(self, number: int) -> str:
        """The node-side end of pod `number`'s link (the pod side is always `eth0`)."""
        return _ifname(f"{self.prefix}p{number:x}")

    def client_netns(self, number: int) -> str:
        return f"{self.prefix}-c{number}"

    def client_veth(self, number: int) -> str:
        return _ifname(f"{self.prefix}c{number}")

    @property
    def workdir_prefix(self) -> str:
        """The start of the run's temporary directory name (`tempfile.mkdtemp(prefix=...)`)."""
        return f"{self.prefix}-"


def netns_path(name: str) -> str:
    """Where `ip netns` keeps the namespace named `name`."""
    return f"{NETNS_DIR}/{name}"
