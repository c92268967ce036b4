"""No packet of a run goes to or comes from an address outside the harness's ranges.

A capture runs on every link the harness makes while a short conformance run goes on: tcpdump on
the "any" device inside the node namespace, started before the node's first link exists. Every
link of a run has its node end there (the bridge, each pod's veth, each client's veth; the other
end of a veth pair carries the same frames), so this sees every frame of every link, also of pods
made and removed during the run.

The harness's ranges: pods 10.244.0.0/16, Services 10.96.0.0/16, client links 10.250.0.0/16,
loopback 127.0.0.0/8. A frame is in range when it is IPv4 or ARP and both its addresses are.
IPv6: none, link-local or not. The cluster turns IPv6 off on its links (the kernel would
otherwise send router solicitations, MLD reports and duplicate-address probes from fe80::/10 on
each link it brings up); only the IPv6 loopback ::1, the counterpart of 127.0.0.0/8, is in range.
Any other protocol is out of range too.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from harness import registry
from harness.conformance import options_for, run_suite
from harness.local.cluster import FABRIC_CIDR, Client, LocalCluster, Node, client_addresses
from harness.local.names import RunNames, netns_path
from harness.local.netns import in_thread, mac_for, setns
from harness.model.objects import Pod
from harness.model.state import POD_CIDR, SERVICE_CIDR
from harness.profiles import PROFILES
from tests.local.capture import (
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    Frame,
    NamespaceCapture,
    read_frames,
)
from tests.local.conftest import needs_root

pytestmark = [
    pytest.mark.netns,
    needs_root,
    pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump"),
]

CLIENT_LINKS = ipaddress.IPv4Network("10.250.0.0/16")
IPV4_RANGES = (
    POD_CIDR,
    SERVICE_CIDR,
    CLIENT_LINKS,
    FABRIC_CIDR,  # the nodes' own addresses, with --nodes 2 or more
    ipaddress.IPv4Network("127.0.0.0/8"),
)
IPV6_LOOPBACK = ipaddress.IPv6Address("::1")


def in_range(frame: Frame) -> bool:
    """Whether a frame keeps to the harness's ranges (the module docstring)."""
    if frame.ethertype in (ETHERTYPE_IPV4, ETHERTYPE_ARP) and frame.source:
        addresses = [ipaddress.IPv4Address(frame.source), ipaddress.IPv4Address(frame.destination)]
        return all(any(a in network for network in IPV4_RANGES) for a in addresses)
    if frame.ethertype == ETHERTYPE_IPV6 and frame.source:
        return {frame.source, frame.destination} == {str(IPV6_LOOPBACK)}
    return False


def node_links(netns: str) -> dict[str, int]:
    """Interface name -> index of the links in `netns` now."""
    output = subprocess.run(
        ["ip", "-n", netns, "-o", "link"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    links = {}
    for line in output.splitlines():
        index, name = line.split(":")[:2]
        links[name.strip().split("@")[0]] = int(index)
    return links


class NodeCaptures:
    """A capture of each node namespace opened while it is installed (`install`), each started
    before the node's first link is made."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.captures: list[NamespaceCapture] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        build_node = LocalCluster._build_node

        def capturing(cluster: LocalCluster, node: Node) -> None:
            path = self.directory / f"{node.netns}.pcap"
            capture = NamespaceCapture(node.netns, path)
            self.captures.append(capture)
            capture.start()
            build_node(cluster, node)

        monkeypatch.setattr(LocalCluster, "_build_node", capturing)

    def stop(self) -> None:
        for capture in self.captures:
            capture.stop()

    @property
    def complete(self) -> bool:
        """Whether there were captures and none missed a frame (after stop)."""
        return bool(self.captures) and all(capture.complete for capture in self.captures)

    def frames(self) -> list[Frame]:
        return [frame for capture in self.captures for frame in read_frames(capture.path)]


@pytest.fixture
def node_capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NodeCaptures]:
    captures = NodeCaptures(tmp_path)
    captures.install(monkeypatch)
    try:
        yield captures
    finally:
        captures.stop()


def knock_from_every_client(clients: Iterable[Client]) -> None:
    """One connection attempt from each client to its gateway's discard port (refused or
    timed out, both fine): a run's traffic need not use every client, and every client's link
    must show up in the capture."""

    def knock(client: Client) -> None:
        setns(netns_path(client.netns))
        with contextlib.suppress(OSError):
            socket.create_connection((client.gateway, 9), timeout=1.0).close()

    for client in clients:
        in_thread(functools.partial(knock, client))


def describe(frames: Sequence[Frame], links: dict[str, int]) -> str:
    names = {index: name for name, index in links.items()}
    shown = [f"{frame} ({names.get(frame.ifindex, 'a link gone by the end')})" for frame in frames]
    return "\n".join(shown[:20])


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["local:iptables", "local:userspace"])
def test_a_conformance_run_sends_no_packet_outside_the_harness_ranges(
    spec: str, prefix: str, tmp_path: Path, node_capture: NodeCaptures
) -> None:
    target = registry.make_target(spec, registry.TargetOptions(prefix=prefix, nodes=2))
    names = RunNames(prefix)
    target.open()
    try:
        (tmp_path / "failures").mkdir()
        options = options_for(
            target,
            seed=5,
            profile=PROFILES["quick"],
            examples=3,
            steps=8,
            failures_dir=tmp_path / "failures",
        )
        suite = run_suite(target, options)
        knock_from_every_client(target.cluster.clients.values())
        links = node_links(names.node_netns)
    finally:
        target.close()
        node_capture.stop()
    assert suite.stats.events > 0 and suite.error is None
    counts = [capture.counts for capture in node_capture.captures]
    assert node_capture.complete, f"the capture missed frames: {counts}"
    frames = node_capture.frames()
    outside = [frame for frame in frames if not in_range(frame)]
    assert outside == [], f"{len(outside)} frames outside the ranges:\n{describe(outside, links)}"
    # the capture saw every kind of link: the bridge, every client's, and pods' (also gone ones)
    seen = {frame.ifindex for frame in frames}
    clients = [names.client_veth(n) for n in range(1, len(target.client_names) + 1)]
    assert {links[names.bridge], *(links[c] for c in clients)} <= seen
    fixed = {links["lo"], links[names.bridge], *(links[c] for c in clients)}
    assert seen - fixed, "no frame on any pod's link"
    assert sum(frame.ethertype == ETHERTYPE_IPV4 for frame in frames) > 1000


# -- the capture would see a frame outside the ranges ---------------------------------------------
def ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    total = (total & 0xFFFF) + (total >> 16)
    return int(~(total + (total >> 16)) & 0xFFFF)


def link_scoped_frames(source_mac: bytes) -> list[bytes]:
    """Frames the kernel itself might send, outside the ranges yet scoped to one link by
    definition (never forwarded, hop limit 1): an IPv4 limited broadcast from 0.0.0.0, an ARP
    probe (sender 0.0.0.0), an IPv6 all-nodes multicast from fe80::1 (no next header). All go to
    the broadcast MAC: the bridge floods those to every port, whereas it forwards multicast only
    to ports with listeners (multicast snooping), and no pod listens on IPv6."""
    broadcast = b"\xff" * 6
    udp = struct.pack("!HHHH", 9, 9, 8, 0)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 1, 17, 0, bytes(4), b"\xff" * 4
    )  # TTL 1, UDP, 0.0.0.0 -> 255.255.255.255
    header = header[:10] + struct.pack("!H", ipv4_checksum(header)) + header[12:]
    arp = struct.pack("!HHBBH", 1, ETHERTYPE_IPV4, 6, 4, 1) + source_mac + bytes(4)
    arp += bytes(6) + socket.inet_aton("10.244.0.77")
    ipv6 = struct.pack("!IHBB", 6 << 28, 0, 59, 1)
    ipv6 += ipaddress.IPv6Address("fe80::1").packed + ipaddress.IPv6Address("ff02::1").packed
    return [
        broadcast + source_mac + struct.pack("!H", ETHERTYPE_IPV4) + header + udp,
        broadcast + source_mac + struct.pack("!H", ETHERTYPE_ARP) + arp,
        broadcast + source_mac + struct.pack("!H", ETHERTYPE_IPV6) + ipv6,
    ]


def test_the_capture_sees_frames_outside_the_ranges_on_the_bridge_and_a_pods_link(
    prefix: str, node_capture: NodeCaptures
) -> None:
    with LocalCluster(prefix, ["client-1"]) as cluster:
        (pod,) = cluster.add_pods([Pod("web-0", "u1", "10.244.0.10")])
        bridge = cluster.names.bridge
        source_mac = bytes.fromhex(mac_for(str(POD_CIDR.network_address + 1)).replace(":", ""))

        def send() -> None:
            setns(netns_path(cluster.node_netns))
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
                raw.bind((bridge, 0))
                for frame in link_scoped_frames(source_mac):
                    raw.send(frame)

        in_thread(send)
        links = node_links(cluster.node_netns)
    node_capture.stop()
    assert node_capture.complete
    outside = [frame for frame in node_capture.frames() if not in_range(frame)]
    found = {(f.ethertype, f.source, f.destination, f.ifindex) for f in outside}
    for ifindex in (links[bridge], links[pod.veth]):
        assert {
            (ETHERTYPE_IPV4, "0.0.0.0", "255.255.255.255", ifindex),
            (ETHERTYPE_ARP, "0.0.0.0", "10.244.0.77", ifindex),
            (ETHERTYPE_IPV6, "fe80::1", "ff02::1", ifindex),
        } <= found, describe(outside, links)
    assert len(found) == 6, f"only the frames sent were out of range:\n{describe(outside, links)}"


def test_the_ranges_hold_the_harness_addresses_and_nothing_else() -> None:
    addresses, gateway = client_addresses(3)
    address = addresses[-1]
    for source, destination in [
        (address, "10.96.0.10"),
        (gateway, address),
        ("10.244.0.1", "127.0.0.1"),
    ]:
        assert in_range(Frame(1, ETHERTYPE_IPV4, source, destination))
    assert in_range(Frame(1, ETHERTYPE_IPV6, "::1", "::1"))
    for frame in [
        Frame(1, ETHERTYPE_IPV4, "10.244.0.10", "192.0.2.1"),
        Frame(1, ETHERTYPE_ARP, "10.245.0.1", "10.244.0.1"),
        Frame(1, ETHERTYPE_IPV6, "fe80::1", "ff02::2"),
        Frame(1, 0x88CC, "", ""),  # LLDP
    ]:
        assert not in_range(frame), frame
