"""Read-only views of processes and sockets from /proc, used to tell when a reload is live.

Everything here only reads /proc; a process that vanishes while being read is treated as gone.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
TCP_LISTEN = "0A"


def children(pid: int) -> set[int]:
    """The direct children of `pid` (scans /proc/*/stat; the field after the comm is the ppid)."""
    found = set()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.add(int(entry.name))
    return found


def is_running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _hex_address(text: str) -> tuple[str, int]:
    address, port = text.split(":")
    octets = bytes.fromhex(address)[::-1]  # /proc/net/tcp prints IPv4 in host (little) order
    return ".".join(str(b) for b in octets), int(port, 16)


def listening_sockets(pid: int) -> dict[int, tuple[str, int]]:
    """The IPv4 TCP sockets in LISTEN state in `pid`'s network namespace, by inode."""
    try:
        rows = (PROC / str(pid) / "net" / "tcp").read_text().splitlines()[1:]
    except OSError:
        return {}
    found = {}
    for row in rows:
        fields = row.split()
        if len(fields) > 9 and fields[3] == TCP_LISTEN:
            found[int(fields[9])] = _hex_address(fields[1])
    return found


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets `pid` holds open."""
    found: set[int] = set()
    fd_dir = PROC / str(pid) / "fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(fd_dir / name)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[len("socket:[") : -1]))
    return found


def holds_listener(pid: int) -> bool:
    """Whether `pid` holds a listening TCP socket open (so it may still accept connections)."""
    return bool(socket_inodes(pid) & set(listening_sockets(pid)))


def handles_signal(pid: int, signal_number: int) -> bool:
    """Whether `pid` has a handler for `signal_number` and does not block it right now.

    A daemon that is still starting (or re-executing itself, as HAProxy's master does on reload)
    may block or ignore its reload signal; one sent then is lost or deferred.
    """
    try:
        status = (PROC / str(pid) / "status").read_text()
    except OSError:
        return False
    masks = {
        key: int(value, 16)
        for key, _, value in (line.partition(":\t") for line in status.splitlines())
        if key in ("SigBlk", "SigCgt")
    }
    bit = 1 << (signal_number - 1)
    return bool(masks.get("SigCgt", 0) & bit) and not masks.get("SigBlk", 0) & bit
