"""`NginxProxy`: nginx's stream module as a Service proxy (TCP only).

One `server { listen VIP:PORT; proxy_pass UPSTREAM; }` per Service port with usable endpoints;
the upstream lists them (`CategorizeEndpoints`) and balances round robin. What nginx does and does
not promise here:

- REJECT: a Service port without usable endpoints has no listener, so the kernel refuses at once.
  It cannot DROP: where kube-proxy drops (internalTrafficPolicy Local, endpoints only on other
  nodes) this proxy refuses too, and fails `reject-when-empty` there (docs/candidate-proxy.md).
- ClientIP affinity is `hash $remote_addr consistent`: a client stays on one backend while the
  backend set is unchanged, but there is **no timeout** (`timeoutSeconds` is ignored: a client never
  rebalances while its backend lives), and when the set changes about 1/n of clients move even if
  their backend is still usable (kube-proxy keeps them).
- A reload (SIGHUP) starts new workers and gracefully stops old ones: established connections stay
  on their old backends until they close, as with conntrack in iptables mode.
- A backend that refuses a connection is retried on the next one (`proxy_next_upstream`, nginx's
  default) but never marked down (`max_fails=0`): like kube-proxy, no health checking.
- The pod sees nginx's address in the node namespace, not the client's (no source IP preservation).
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from harness.local.names import PREFIX_ENVIRONMENT
from harness.proxies.base import RELAYING_FEATURES
from harness.proxies.listeners import Listener
from harness.proxies.reloading import ReloadingConfigProxy

STREAM_MODULE_PATHS = (
    Path("/usr/lib/nginx/modules/ngx_stream_module.so"),
    Path("/usr/lib64/nginx/modules/ngx_stream_module.so"),
    Path("/usr/share/nginx/modules/ngx_stream_module.so"),
)
CONNECT_TIMEOUT_S = 2


def stream_module() -> Path | None:
    """The dynamic stream module to load, or None when nginx has it built in (or lacks it)."""
    return next((path for path in STREAM_MODULE_PATHS if path.exists()), None)


def render_nginx(listeners: Sequence[Listener], directory: Path, module: Path | None) -> str:
    """nginx.conf for `listeners`, with its pid file and logs under `directory`. Pure."""
    lines = [
        "daemon off;",
        "worker_processes 1;",
        f"pid {directory}/nginx.pid;",
        f"error_log {directory}/error.log notice;",
        f"env {PREFIX_ENVIRONMENT};",  # workers keep it, so `harness clean` finds them
    ]
    if module is not None:
        lines.append(f"load_module {module};")
    lines += ["events { worker_connections 4096; }", "stream {"]
    for listener in listeners:
        lines.append(f"  upstream {listener.key} {{")
        if listener.affinity_timeout_s is not None:
            lines.append("    hash $remote_addr consistent;")
        lines += [f"    server {d.address}:{d.port} max_fails=0;" for d in listener.destinations]
        lines += [
            "  }",
            "  server {",
            f"    listen {listener.address}:{listener.port};",
            f"    proxy_pass {listener.key};",
            f"    proxy_connect_timeout {CONNECT_TIMEOUT_S}s;",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


class NginxProxy(ReloadingConfigProxy):
    """nginx stream (TCP): round robin, ClientIP by consistent hash (no timeout), reload by HUP."""

    name: ClassVar[str] = "nginx"
    features: ClassVar[frozenset[str]] = RELAYING_FEATURES
    description: ClassVar[str] = (
        "nginx stream module, reloaded on each change (TCP; affinity without timeout)"
    )
    reload_signal: ClassVar[signal.Signals] = signal.SIGHUP
    config_name: ClassVar[str] = "nginx.conf"
    packages: ClassVar[str] = "nginx-light libnginx-mod-stream"

    def render(self, listeners: Sequence[Listener], directory: Path) -> str:
        return render_nginx(listeners, directory, stream_module())

    def argv(self, config: Path, directory: Path) -> list[str]:
        return ["nginx", "-c", str(config), "-p", f"{directory}/", "-e", f"{directory}/error.log"]
