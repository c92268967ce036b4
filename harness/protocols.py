"""What this machine's kernel offers beyond TCP, for the features report (issue 12, item 3).

SCTP Services need what a Service proxy needs of the kernel: that it tracks and NATs SCTP
(`CONFIG_NF_CT_PROTO_SCTP`, part of nf_conntrack; its sysctls
`/proc/sys/net/netfilter/nf_conntrack_sctp_timeout_*` exist exactly when it is built in and
conntrack is loaded). nf_nat translates SCTP and recomputes its CRC32c; the `sctp` match and nft
`sctp dport` are part of the same kernels. The SCTP *socket* layer (`CONFIG_IP_SCTP`, the `sctp`
module, listed in `/proc/net/protocols`) is the pods' business, not the proxy's: without it the
local cluster's pods answer SCTP on a raw socket (`harness.local.sctp`, `SctpMode.RAW`); with it,
on real SCTP sockets (`SctpMode.SOCKET`). So a `local:` target reports `sctp` "unsupported by the
environment" only when the kernel lacks SCTP conntrack.

Everything here reads files and changes nothing: opening a probe socket instead could make the
kernel load the `sctp` module, a change to the whole machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

PROTOCOLS_FILE = Path("/proc/net/protocols")
NETFILTER_DIR = Path("/proc/sys/net/netfilter")
SCTP_CONNTRACK_SYSCTL = "nf_conntrack_sctp_timeout_cookie_wait"
"""One of the SCTP conntrack sysctls: present when the kernel tracks SCTP."""
SCTP_FEATURE = "sctp"


class SctpMode(StrEnum):
    """How the local cluster's pods and clients speak SCTP on this kernel."""

    RAW = "raw"
    """No kernel SCTP stack: a responder and a client on raw sockets (`harness.local.sctp`)."""
    SOCKET = "socket"
    """A kernel SCTP stack: real SCTP sockets, as TCP's (it would answer INITs itself)."""


def sctp_unsupported(netfilter_dir: Path = NETFILTER_DIR) -> str | None:
    """Why this environment cannot carry SCTP Services, or None when its kernel tracks (and so
    NATs) SCTP: the SCTP conntrack sysctls exist under `netfilter_dir`. Reads one directory
    entry; never raises."""
    if (netfilter_dir / SCTP_CONNTRACK_SYSCTL).exists():
        return None
    if not (netfilter_dir / "nf_conntrack_count").exists():
        return (
            f"unsupported by the environment: {netfilter_dir} has no conntrack sysctls"
            " (nf_conntrack is not loaded; it loads with the first proxy rules, then run again)"
        )
    return (
        "unsupported by the environment: this kernel does not track SCTP"
        f" ({netfilter_dir}/{SCTP_CONNTRACK_SYSCTL} is absent: built without"
        " CONFIG_NF_CT_PROTO_SCTP), so no proxy can NAT it"
    )


def sctp_mode(protocols_file: Path = PROTOCOLS_FILE) -> SctpMode:
    """How pods speak SCTP here: `SOCKET` when the kernel has SCTP registered in
    `protocols_file`, else `RAW` (also when it is unreadable). Reads one file; never raises."""
    try:
        lines = protocols_file.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return SctpMode.RAW
    if any(line.split()[:1] == ["SCTP"] for line in lines):
        return SctpMode.SOCKET
    return SctpMode.RAW


KUBE_LOAD_BALANCER = (
    "unsupported by the environment: an ingress IP comes from the cluster's LoadBalancer"
    " controller, which a cluster may lack (kind has none) and the harness does not drive; the"
    " kube target sends to node ports only"
)
"""The kube target's note on `load-balancer` (`KubeTarget.features`)."""
KUBE_EXTERNAL_IPS = (
    "unsupported by the environment: a cluster's admission may refuse externalIPs"
    " (DenyServiceExternalIPs, or a policy such as the externalip-webhook) and nothing routes"
    " them to a chosen node from outside; the kube target sends to node ports only"
)
"""The kube target's note on `external-ips` (`KubeTarget.features`)."""
KUBE_TOPOLOGY = (
    "unsupported by the environment: the cluster's EndpointSlice controller hints endpoints by"
    " its nodes' topology.kubernetes.io/zone labels, which the harness neither sets nor checks"
    " against the model's zone per node (node-1 zone-a, node-2 zone-b, ...)"
)
"""The kube target's note on `topology` (`KubeTarget.features`)."""
KUBE_SCTP = (
    "unsupported by the environment unless --kube-sctp (extra option sctp=on; --pods local"
    " needs none where this machine's kernel tracks SCTP): SCTP Services need the sctp module"
    " on every node (the backends' netexec --sctp-port listener exits"
    " without it), which the harness neither loads nor checks; load it (modprobe sctp) and turn"
    " it on; with it a REJECT's refusal is not judged (docs/kube.md, SCTP Services)"
)
"""The kube target's note on `sctp` (`KubeTarget.features`; the conformance report appends it
whatever the options, so it reads right with `--kube-sctp` too, where SCTP is sent through the
client pods' netexec `/dial`: `harness.kube.sctp`)."""


def environment_notes(target: str) -> Mapping[str, str]:
    """Features the environment of `target` cannot carry, with why: SCTP on a `local:` target
    whose kernel does not track SCTP (`sctp_unsupported`); LoadBalancer on a real cluster
    without a controller (`kube`, `KUBE_LOAD_BALANCER`), externalIPs there (`KUBE_EXTERNAL_IPS`)
    and SCTP (`KUBE_SCTP`). Other targets run on no kernel of their own (the model): nothing is
    said of them."""
    if target == "kube":
        return {
            "load-balancer": KUBE_LOAD_BALANCER,
            "external-ips": KUBE_EXTERNAL_IPS,
            "topology": KUBE_TOPOLOGY,
            SCTP_FEATURE: KUBE_SCTP,
        }
    if not target.startswith("local"):
        return {}
    why = sctp_unsupported()
    return {SCTP_FEATURE: why} if why else {}
