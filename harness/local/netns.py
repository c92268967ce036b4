"""Network namespaces, links, addresses and sysctls: the side effects of the local cluster.

Every change sits behind a context manager that undoes it, so cleanup follows from structure:
`namespaces(...)` deletes what it created, `entered(path)` returns the calling thread to where it
was. Bulk work goes through `ip -b` batches (one process for many changes) and, inside single
namespaces, through raw rtnetlink (`harness.local.rtnetlink`), because both were measured fastest.

Nothing here ever touches the root namespace's addresses, routes, sysctls or rules: every `ip`
batch that changes links names its namespace with `-n`, and only `ip netns add/del` lines run
without it (they create and remove the mount points under /run/netns, nothing else).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeVar

from harness.errors import EnvironmentProblem
from harness.local.names import netns_path, new_prefix

CLONE_NEWNET = 0x40000000
IP_TIMEOUT_S = 60.0
LISTEN_BACKLOG = 1024
_libc = ctypes.CDLL(None, use_errno=True)
_T = TypeVar("_T")


def setns(path: str) -> None:
    """Move the calling thread into the network namespace at `path` (a file or /proc link)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns {path}: {os.strerror(error)}")
    finally:
        os.close(fd)


def current_netns_path() -> str:
    """A path to the calling thread's own namespace, valid while the thread lives."""
    return f"/proc/self/task/{threading.get_native_id()}/ns/net"


@contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the block with the calling thread inside namespace `path`, then return it.

    Only the calling thread moves; sockets opened inside stay in that namespace for their life.
    """
    home = os.open(current_netns_path(), os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(path)
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:  # cannot fail for a namespace we were in
                raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")
    finally:
        os.close(home)


def in_thread(work: Callable[[], _T], timeout_s: float = 60.0) -> _T:
    """Run `work` in a fresh thread and return its result (or raise its exception).

    For work that enters namespaces: the thread ends afterwards, so a failure half-way can never
    leave the caller's thread in a pod's namespace.
    """
    result: list[_T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as error:  # handed to the caller below
            failure.append(error)

    thread = threading.Thread(target=run, name="harness-netns", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise EnvironmentProblem(f"namespace work did not finish within {timeout_s:.0f} s")
    if failure:
        raise failure[0]
    return result[0]


def ip_batch(lines: Sequence[str], netns: str | None = None, force: bool = False) -> None:
    """Run `lines` as one `ip -b` batch, inside `netns` when given.

    Stops at the first failing line unless `force`; EnvironmentProblem quotes ip's error.
    """
    if not lines:
        return
    command = ["ip", *(["-n", netns] if netns else []), *(["-force"] if force else []), "-b", "-"]
    try:
        done = subprocess.run(
            command,
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            timeout=IP_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise EnvironmentProblem("the `ip` tool (iproute2) is not installed") from None
    if done.returncode != 0 and not force:
        message = " ".join(done.stderr.split())[:300]
        raise EnvironmentProblem(f"ip {'-n ' + netns if netns else ''} batch failed: {message}")


def netns_exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def delete_namespaces(names: Iterable[str]) -> None:
    """Delete named namespaces; missing ones are ignored. The kernel frees their links."""
    ip_batch([f"netns del {name}" for name in names if netns_exists(name)], force=True)


@contextmanager
def namespaces(names: Sequence[str]) -> Iterator[list[str]]:
    """Create the named namespaces; delete them on exit, also after an error."""
    try:
        ip_batch([f"netns add {name}" for name in names])
        yield list(names)
    finally:
        delete_namespaces(names)


@contextmanager
def scratch_namespace() -> Iterator[str]:
    """A fresh bare namespace `<run prefix>-scratch` with only `lo`, up; deleted on exit.

    For tests and benchmarks that need a namespace but no cluster. Its name carries a run
    prefix, so `harness clean` finds it if the process that made it was killed.
    """
    name = f"{new_prefix()}-scratch"
    with namespaces([name]):
        ip_batch(["link set lo up"], netns=name)
        yield name


def write_sysctls(netns: str, values: Mapping[str, str]) -> None:
    """Set sysctls (`net.ipv4.ip_forward` style keys) inside namespace `netns` only.

    /proc/sys/net resolves to the namespace of the thread that opens it, so the writes happen in
    a thread that entered `netns`; the root namespace's values never change.
    """

    def write() -> None:
        setns(netns_path(netns))
        for key, value in values.items():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as handle:
                handle.write(value)

    in_thread(write)


def read_sysctl(netns: str, key: str) -> str:
    def read() -> str:
        setns(netns_path(netns))
        with open("/proc/sys/" + key.replace(".", "/")) as handle:
            return handle.read().strip()

    return in_thread(read)


def flush_conntrack(netns: str) -> None:
    """Forget every tracked connection in `netns` (no-op without the conntrack tool).

    Entries outlive the rules and pods they were made for (TCP ones by minutes), and a client
    reusing a source port would match one and follow its old NAT binding.
    """
    if shutil.which("conntrack") is None:
        return
    subprocess.run(
        ["ip", "netns", "exec", netns, "conntrack", "-F"],
        capture_output=True,
        timeout=IP_TIMEOUT_S,
        check=False,
    )


def listening_socket(
    address: str,
    port: int,
    netns: str | None = None,
    prepare: Callable[[socket.socket], None] | None = None,
    protocol: int = 0,
) -> socket.socket:
    """A non-blocking TCP socket listening on `address:port`, made inside namespace `netns` (a
    path; None: the caller's own). `prepare` is called on the socket before it is bound (a
    socket option that must hold from the first packet on). `protocol` 132 makes it a
    one-to-one SCTP socket instead (`harness.local.sctp`, socket mode). The caller's thread is
    back in its namespace on return."""
    with entered(netns) if netns else contextlib.nullcontext():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if prepare is not None:
            prepare(sock)
        sock.bind((address, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def mac_for(address: str) -> str:
    """A locally administered MAC derived from an IPv4 address, as Docker does.

    A pod recreated with the same IP gets the same MAC, so the node's ARP cache never points a
    reused address at a link that is gone.
    """
    octets = [int(part) for part in address.split(".")]
    return "02:42:" + ":".join(f"{octet:02x}" for octet in octets)
