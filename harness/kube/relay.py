"""A loopback relay that makes the API server reachable inside a network namespace.

The node namespace of the kubelet-less mode has no link off the machine, so a proxy under test
running there (kube-proxy) cannot reach the API server. `Relay` opens a listening socket on
`127.0.0.1:PORT` *inside* that namespace (a socket keeps the namespace it was created in) and
forwards each accepted connection, byte for byte, to the API server's address from the harness's
own namespace. The namespace gains no route and no link; the only thing reachable through the
relay is the one API server address it was given. TLS passes through untouched, so the proxy
authenticates to the real server with the kubeconfig `proxy_kubeconfig` writes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from harness.errors import EnvironmentProblem, UsageError
from harness.local.names import netns_path
from harness.local.netns import entered

CHUNK_BYTES = 65536
CONNECT_TIMEOUT_S = 5.0


def server_address(server: str) -> tuple[str, int]:
    """(host, port) of an API server URL; UsageError for anything but http(s)."""
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"API server URL {server!r} must be http(s)://HOST[:PORT]")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


class Relay:
    """Forwards connections to `127.0.0.1:listen_port` inside `netns` to `target`.

    `start()` binds inside the namespace (EnvironmentProblem if the port is taken there) and
    serves from daemon threads; `cut()` closes every relayed connection and keeps listening, so
    the proxy must connect, list and watch again, as after an API server restart or a dropped
    connection; `stop()` closes the listener and every relayed connection. It changes nothing
    but its own sockets. `netns` None listens in the caller's own namespace (tests); port 0
    takes a free port (`port` says which, once started).
    """

    def __init__(self, netns: str | None, target: tuple[str, int], listen_port: int) -> None:
        self.netns = netns
        self.target = target
        self.listen_port = listen_port
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def start(self) -> None:
        def listen() -> socket.socket:
            inside = entered(netns_path(self.netns)) if self.netns else contextlib.nullcontext()
            with inside:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.listen_port))
            listener.listen(64)
            return listener

        result: list[Any] = []

        def run() -> None:  # a throw-away thread moves namespaces, never the caller
            try:
                result.append(listen())
            except OSError as error:
                result.append(error)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(10.0)
        if not result or isinstance(result[0], OSError):
            reason = result[0] if result else "timed out"
            raise EnvironmentProblem(
                f"cannot open the API relay on 127.0.0.1:{self.listen_port}"
                f" in {self.netns}: {reason}"
            )
        self._listener = result[0]
        threading.Thread(target=self._accept, name="api-relay", daemon=True).start()

    @property
    def port(self) -> int:
        """The port it listens on (the one given, or the free one taken for 0)."""
        listener = self._listener
        return int(listener.getsockname()[1]) if listener is not None else self.listen_port

    def cut(self) -> int:
        """Close every connection relayed now, both ends, and keep listening: the proxy sees
        its API connections drop and must open new ones. The number of connections cut."""
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        _close(sockets)
        return len(sockets) // 2

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        _close([*sockets, *([self._listener] if self._listener else [])])
        self._listener = None

    def _accept(self) -> None:
        listener = self._listener
        while listener is not None and not self._stopped.is_set():
            try:
                inside, _ = listener.accept()
            except OSError:
                return
            try:
                outside = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT_S)
                outside.settimeout(None)
            except OSError:
                inside.close()
                continue
            with self._lock:
                self._sockets.update((inside, outside))
            for source, sink in ((inside, outside), (outside, inside)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK_BYTES):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)
            source.close()


def _close(sockets: list[socket.socket]) -> None:
    """Shut down and close `sockets`, ignoring those already closed."""
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


def relayed_server(server: str, listen_port: int) -> tuple[str, str | None]:
    """The URL the proxy uses inside the namespace, and the TLS server name to verify.

    A loopback server keeps its URL (the relay listens on the same port); any other host is
    reached as 127.0.0.1 with the original host name kept for certificate verification.
    """
    parts = urlsplit(server)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return f"{parts.scheme}://{host}:{listen_port}", None
    return f"{parts.scheme}://127.0.0.1:{listen_port}", host


def proxy_kubeconfig(
    path: Path, configuration: Any, server: str, tls_server_name: str | None, namespace: str
) -> Path:
    """Write the kubeconfig the proxy under test gets as `{kubeconfig}`: same credentials as the
    harness's own connection, server replaced by the relay's address. Mode 0600."""
    cluster: dict[str, Any] = {"server": server}
    if configuration.ssl_ca_cert:
        cluster["certificate-authority"] = str(configuration.ssl_ca_cert)
    if not configuration.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True
    if tls_server_name:
        cluster["tls-server-name"] = tls_server_name
    user: dict[str, Any] = {}
    if configuration.cert_file:
        user["client-certificate"] = str(configuration.cert_file)
    if configuration.key_file:
        user["client-key"] = str(configuration.key_file)
    token = (configuration.api_key or {}).get("authorization", "")
    if token.startswith("Bearer "):
        user["token"] = token.removeprefix("Bearer ")
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "harness", "cluster": cluster}],
        "users": [{"name": "harness", "user": user}],
        "contexts": [
            {
                "name": "harness",
                "context": {"cluster": "harness", "user": "harness", "namespace": namespace},
            }
        ],
        "current-context": "harness",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
