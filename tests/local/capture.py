"""A packet capture of every link in a namespace (tcpdump), read back as frames with addresses.

`NamespaceCapture` runs `tcpdump -i any` inside a namespace: the "any" device is a packet socket
bound to no interface, so it receives every frame sent or received on every interface of that
namespace, including interfaces made after the capture started (a pod's link). It waits until
tcpdump says it is listening, and on `stop()` reads tcpdump's own counts: frames the kernel
dropped, and frames the filter passed but tcpdump had not written yet when it was stopped.
`complete` is true only when both are zero: a capture that missed frames proves nothing.
tcpdump runs in immediate mode (each frame is handed over as it arrives, instead of in blocks
after a timeout), and `stop()` gives it a moment to drain before ending it.

Frames are written as pcap in the Linux "cooked v2" format (LINUX_SLL2), whose header carries the
interface index and the protocol; `read_frames` parses only that format, by hand (the format is
small and fixed: pcap's 24-byte file header, a 16-byte header per record, SLL2's 20 bytes), and
keeps what the harness's promises are about: interface, protocol, and the IPv4 or ARP addresses.
"""

from __future__ import annotations

import ipaddress
import re
import signal
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.proxies.process import netns_argv

LINKTYPE_LINUX_SLL2 = 276
SLL2_HEADER_BYTES = 20
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
SNAPSHOT_BYTES = 128  # SLL2, an IPv6 header and ports fit; payloads are not needed
BUFFER_KIB = 32768  # the kernel's capture buffer: bursts of fresh connections must not overflow
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
DRAIN_S = 0.5
LOOPBACK_IFINDEX = 1  # `lo` in every network namespace
STATISTIC = re.compile(r"(\d+) packets? (captured|received by filter|dropped by kernel)")


@dataclass(frozen=True)
class Frame:
    """One captured frame: interface index, ethertype, and its network addresses (IPv4 source
    and destination, ARP sender and target, IPv6 source and destination; empty for others)."""

    ifindex: int
    ethertype: int
    source: str
    destination: str

    def __str__(self) -> str:
        names = {ETHERTYPE_IPV4: "IPv4", ETHERTYPE_ARP: "ARP", ETHERTYPE_IPV6: "IPv6"}
        kind = names.get(self.ethertype, f"ethertype 0x{self.ethertype:04x}")
        return f"{kind} {self.source or '?'} > {self.destination or '?'} on ifindex {self.ifindex}"


def _addresses(ethertype: int, payload: bytes) -> tuple[str, str]:
    """(source, destination) of a network-layer payload; ("", "") if it is cut or unknown."""
    if ethertype == ETHERTYPE_IPV4 and len(payload) >= 20:
        return str(ipaddress.IPv4Address(payload[12:16])), str(
            ipaddress.IPv4Address(payload[16:20])
        )
    if ethertype == ETHERTYPE_ARP and len(payload) >= 8:
        hardware, protocol = payload[4], payload[5]
        sender = 8 + hardware
        target = sender + protocol + hardware
        if protocol == 4 and len(payload) >= target + 4:
            return (
                str(ipaddress.IPv4Address(payload[sender : sender + 4])),
                str(ipaddress.IPv4Address(payload[target : target + 4])),
            )
    if ethertype == ETHERTYPE_IPV6 and len(payload) >= 40:
        return str(ipaddress.IPv6Address(payload[8:24])), str(ipaddress.IPv6Address(payload[24:40]))
    return "", ""


def read_frames(path: Path) -> list[Frame]:
    """The frames of a LINUX_SLL2 pcap file written by tcpdump; ValueError for another format."""
    data = path.read_bytes()
    if len(data) < 24:
        raise ValueError(f"{path} is not a pcap file ({len(data)} bytes)")
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<"}.get(magic)
    order = order or {b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if order is None:
        raise ValueError(f"{path} is not a pcap file (magic {magic.hex()})")
    (linktype,) = struct.unpack(order + "I", data[20:24])
    if linktype != LINKTYPE_LINUX_SLL2:
        raise ValueError(f"{path} has link type {linktype}, not LINUX_SLL2 ({LINKTYPE_LINUX_SLL2})")
    frames = []
    offset = 24
    while offset + 16 <= len(data):
        captured = struct.unpack(order + "I", data[offset + 8 : offset + 12])[0]
        record = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        if len(record) < SLL2_HEADER_BYTES:
            continue
        ethertype, _, ifindex = struct.unpack(">HHI", record[:8])  # SLL2 is big-endian
        frames.append(Frame(ifindex, ethertype, *_addresses(ethertype, record[20:])))
    return frames


class NamespaceCapture:
    """tcpdump on every interface of namespace `netns`, into `path`. Bounded: `stop()` ends it
    within STOP_TIMEOUT_S (then kills it). Changes nothing but the file it writes."""

    def __init__(self, netns: str, path: Path) -> None:
        self.netns = netns
        self.path = path
        self.counts: dict[str, int] = {}  # tcpdump's statistics, known after stop()
        self._process: subprocess.Popen[str] | None = None
        self._errors: list[str] = []
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start tcpdump and return once it is listening; RuntimeError if it does not."""
        argv = [
            "tcpdump", "-i", "any", "-n", "--immediate-mode", "-y", "LINUX_SLL2",
            "-s", str(SNAPSHOT_BYTES),
            "-B", str(BUFFER_KIB), "-Z", "root", "-w", str(self.path),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            netns_argv(self.netns, argv), stderr=subprocess.PIPE, text=True
        )
        self._reader = threading.Thread(target=self._read_errors, daemon=True)
        self._reader.start()
        if not self._listening.wait(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"tcpdump did not start in {self.netns}: {self._errors}")

    def _read_errors(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            self._errors.append(line.strip())
            if "listening on" in line:
                self._listening.set()

    def stop(self) -> None:
        """End tcpdump (SIGINT: it writes out what it holds and its statistics); idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        time.sleep(DRAIN_S)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)  # tcpdump's last words: its statistics
        self.counts = {
            name: int(count) for count, name in STATISTIC.findall(" ".join(self._errors))
        }

    @property
    def complete(self) -> bool:
        """Whether every frame the filter passed was written and none was dropped (after stop).

        A frame on `lo` passes the filter twice, going out and coming in; libpcap's `any` device
        keeps only the incoming copy (pcap-linux.c skips PACKET_OUTGOING on the loopback
        index), so each captured `lo` frame stands for one the kernel counted and libpcap
        skipped: not a missing frame. (A node's host network sees `lo` traffic when its own
        connection is REJECTed: the ICMP error comes back to itself.)"""
        counts = self.counts
        if len(counts) != 3 or counts["dropped by kernel"] != 0:
            return False
        looped = sum(frame.ifindex == LOOPBACK_IFINDEX for frame in read_frames(self.path))
        return counts["captured"] + looped == counts["received by filter"]
