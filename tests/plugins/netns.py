"""Test-only network namespaces: a node namespace named "hkt"+hex, backends and clients in it.

Sockets are made inside a namespace from a thread that entered it (`setns` changes only the
calling thread's network namespace); a socket stays in the namespace it was made in, so it can be
used from any thread afterwards. Everything here is bounded in time and removed in `finally`.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def in_netns(netns: str, function: Callable[[], T]) -> T:
    """Run `function` in a thread that entered `netns`, and return its result."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns failed")
            result.append(function())
        except BaseException as error:
            errors.append(error)
        finally:
            os.close(fd)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return result[0]


class NameServers:
    """Backends: each listens on one address:port and answers its name, then closes."""

    def __init__(self, netns: str, backends: dict[str, tuple[str, int]]) -> None:
        self.sockets = {
            name: in_netns(netns, lambda a=address: socket.create_server(a))
            for name, address in backends.items()
        }
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._serve, args=(name, s), daemon=True)
            for name, s in self.sockets.items()
        ]
        for thread in self._threads:
            thread.start()

    def _serve(self, name: str, server: socket.socket) -> None:
        server.settimeout(0.2)
        while not self._stopping:
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.sendall(name.encode())

    def close(self) -> None:
        self._stopping = True
        for thread in self._threads:
            thread.join(2)
        for server in self.sockets.values():
            server.close()


def ask(netns: str, address: str, port: int, timeout_s: float = 2.0) -> str:
    """Connect to address:port from inside `netns`; the answer, or "refused"/"timeout"."""

    def connect() -> str:
        try:
            with socket.create_connection((address, port), timeout=timeout_s) as connection:
                return connection.recv(100).decode() or "closed"
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except ConnectionResetError:
            return "reset"

    return in_netns(netns, connect)
