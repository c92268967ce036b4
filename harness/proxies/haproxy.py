"""`HaproxyProxy`: HAProxy in TCP mode as a Service proxy.

One `listen` section per Service port with usable endpoints, `balance roundrobin` over them
(`CategorizeEndpoints`). Master-worker mode (`-W`); a change rewrites the config and sends the
master SIGUSR2, which starts a new worker and soft-stops the old ones. What it promises here:

- REJECT: a Service port without usable endpoints has no listener, so the kernel refuses at once.
  It cannot DROP: where kube-proxy drops (internalTrafficPolicy Local, endpoints only on other
  nodes) this proxy refuses too, and fails `reject-when-empty` there (docs/candidate-proxy.md).
- ClientIP affinity: a stick table on the source address, `expire` = `timeoutSeconds`, refreshed
  by every connection (as kube-proxy's `recent` match). The table lives in the worker, so **a
  reload forgets it**: after any change to any Service, clients may move. (A local `peers`
  section, meant to hand tables to the new worker, did not carry them over with HAProxy 2.6 in
  master-worker mode here: the new worker's table was empty a second after the reload.)
- Established connections stay on their old backends until they close (soft stop).
- The pod sees haproxy's address in the node namespace, not the client's.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from harness.proxies.base import RELAYING_FEATURES
from harness.proxies.listeners import Listener, identifier
from harness.proxies.reloading import ReloadingConfigProxy

STICK_TABLE_SIZE = "100k"
CONNECT_TIMEOUT_S = 2
IDLE_TIMEOUT = "10m"


def render_haproxy(listeners: Sequence[Listener], directory: Path) -> str:
    """haproxy.cfg for `listeners`, with its sockets under `directory`. Pure.

    An idle frontend on a unix socket in `directory` is always present, because haproxy refuses
    to run with no listener at all (a cluster with no Service yet).
    """
    lines = [
        "global",
        "  maxconn 8000",
        "defaults",
        "  mode tcp",
        f"  timeout connect {CONNECT_TIMEOUT_S}s",
        f"  timeout client {IDLE_TIMEOUT}",
        f"  timeout server {IDLE_TIMEOUT}",
        "frontend hk_idle",
        f"  bind unix@{directory}/idle.sock",
        "  tcp-request connection reject",
    ]
    for listener in listeners:
        lines += [f"listen {listener.key}", f"  bind {listener.address}:{listener.port}"]
        lines.append("  balance roundrobin")
        if listener.affinity_timeout_s is not None:
            expire_s = listener.affinity_timeout_s
            lines += [
                f"  stick-table type ip size {STICK_TABLE_SIZE} expire {expire_s}s",
                "  stick on src",
            ]
        lines += [
            f"  server {identifier(d.backend.pod, d.backend.uid)} {d.address}:{d.port}"
            for d in listener.destinations
        ]
    return "\n".join(lines) + "\n"


class HaproxyProxy(ReloadingConfigProxy):
    """HAProxy (TCP): round robin, ClientIP by stick table with expiry, reload by USR2."""

    name: ClassVar[str] = "haproxy"
    features: ClassVar[frozenset[str]] = RELAYING_FEATURES
    description: ClassVar[str] = (
        "HAProxy in TCP mode, master-worker, reloaded on each change (affinity lost on reload)"
    )
    reload_signal: ClassVar[signal.Signals] = signal.SIGUSR2
    config_name: ClassVar[str] = "haproxy.cfg"
    packages: ClassVar[str] = "haproxy"

    def render(self, listeners: Sequence[Listener], directory: Path) -> str:
        return render_haproxy(listeners, directory)

    def argv(self, config: Path, directory: Path) -> list[str]:
        return ["haproxy", "-W", "-db", "-f", str(config)]
