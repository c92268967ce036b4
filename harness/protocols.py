"""What this machine's kernel offers beyond TCP, for the features report (issue 12, item 3).

SCTP Services need the kernel's SCTP protocol. Whether it is there is read from
`/proc/net/protocols` (the protocols registered in this network namespace's kernel), which
changes nothing: opening a probe socket instead could make the kernel load the `sctp` module,
a change to the whole machine. The local cluster runs on this kernel, so for a `local:` target
an absent SCTP is reported as "unsupported by the environment" beside the feature's status.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

PROTOCOLS_FILE = Path("/proc/net/protocols")
SCTP_FEATURE = "sctp"


def sctp_unsupported(protocols_file: Path = PROTOCOLS_FILE) -> str | None:
    """Why this environment cannot carry SCTP, or None when its kernel has SCTP registered.
    Reads one file; never raises."""
    try:
        lines = protocols_file.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError as error:
        return f"unsupported by the environment: {protocols_file} unreadable ({error.strerror})"
    if any(line.split()[:1] == ["SCTP"] for line in lines):
        return None
    return (
        "unsupported by the environment: this kernel has no SCTP protocol registered"
        f" ({protocols_file} lists none; the sctp module is not loaded or not built)"
    )


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
    "unsupported by the environment: the kube target's client pods have no SCTP client that"
    " reports the answering pod (agnhost's `connect --protocol=sctp` discards the answer, and"
    " its OpenBSD nc has no SCTP mode: netcat-openbsd 1.219 checked), and SCTP needs the sctp"
    " module on every node's kernel, which the harness neither loads nor checks there"
)
"""The kube target's note on `sctp` (`KubeTarget.features`); its UDP runs on nc
(`harness.kube.udp`)."""


def environment_notes(target: str) -> Mapping[str, str]:
    """Features the environment of `target` cannot carry, with why: SCTP on a `local:` target
    whose kernel lacks it; LoadBalancer on a real cluster without a controller (`kube`,
    `KUBE_LOAD_BALANCER`), externalIPs there (`KUBE_EXTERNAL_IPS`) and SCTP (`KUBE_SCTP`).
    Other targets run on no kernel of their own (the model): nothing is said of them."""
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
