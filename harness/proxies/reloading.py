"""The shared base of proxies that are third-party load balancers driven by a config file.

`ReloadingConfigProxy` turns the tracked Services and slices into `Listener`s (one per Service
port with usable endpoints, chosen by `CategorizeEndpoints` through
`harness.model.endpoints.usable_destinations`), asks its subclass to render a config file, and
reloads the daemon when the file changes. `sync()` returns only once the new configuration is
what new connections see, judged from /proc rather than from timing:

- a worker process started after the reload signal exists, and
- every worker older than the signal holds no listening socket (so it accepts nothing new), and
- the set of TCP listeners on Service addresses and node ports in the node namespace is exactly
  the planned one.

A Service port without usable endpoints gets no listener. Service VIPs are made local to the node
namespace by one `local` route for the whole Service CIDR on `lo`, so a connection to a VIP:port
with no listener is refused by the kernel at once (a TCP RST): the REJECT that kube-proxy gives
Services without endpoints (kubernetes#17359, PR #72534).

An opted-out Service (`service.kubernetes.io/service-proxy-name` or `.../headless`, I13) is not
this proxy's: `TrackingProxy` leaves it out of `program`, and its VIP is handed back to what the
node does with an unprogrammed VIP (`carved_out`: a `blackhole` /32 route in the local table,
more specific than the range's `local` route), so a connection to it is dropped, not refused.

The daemon runs in the node namespace as `nobody` with only CAP_NET_BIND_SERVICE, from a private
directory under `NodeContext.workdir`; `stop()` ends it and removes the route and the directory.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import time
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import ClassVar

from harness.errors import EnvironmentProblem
from harness.model.objects import Service
from harness.proxies.base import NodeContext, TrackingProxy
from harness.proxies.failure import ProxyFailure
from harness.proxies.listeners import NODE_PORT_ADDRESS, Listener, plan_listeners
from harness.proxies.process import NetnsProcess, Unprivileged, run_environment, run_in_netns
from harness.proxies.procfs import children, handles_signal, holds_listener, listening_sockets

APPLY_TIMEOUT_S = 10.0
POLL_S = 0.005


# -- side effects, each undone by its context manager --------------------------------------------
@contextlib.contextmanager
def local_service_range(netns: str, cidr: str) -> Iterator[None]:
    """Make every address of `cidr` local to `netns` (one `local` route on `lo`)."""
    run_in_netns(netns, ["ip", "link", "set", "lo", "up"])
    run_in_netns(netns, ["ip", "route", "replace", "local", cidr, "dev", "lo"])
    try:
        yield
    finally:
        with contextlib.suppress(EnvironmentProblem):
            run_in_netns(netns, ["ip", "route", "del", "local", cidr, "dev", "lo"])


def make_searchable(path: Path, prefix: str, user: Unprivileged) -> None:
    """Let `user` reach `path`: add o+x (search, not read) to the proxy's workdir (`path`'s parent)
    and to the run's own directories above it (named with the run `prefix`); EnvironmentProblem
    if another directory blocks the way."""
    for parent in path.parents:
        if not parent.exists() or parent.stat().st_mode & 0o001:
            continue
        if parent != path.parent and not parent.name.startswith(prefix):
            raise EnvironmentProblem(
                f"{parent} is not searchable by uid {user.uid}, who runs the balancer; "
                "give it mode o+x or use a workdir under /tmp"
            )
        parent.chmod(parent.stat().st_mode | 0o001)


@contextlib.contextmanager
def private_directory(path: Path, user: Unprivileged, prefix: str) -> Iterator[Path]:
    """A fresh directory owned by `user`, removed on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    make_searchable(path, prefix, user)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.chown(path, user.uid, user.gid)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def carve_out(netns: str, address: str, carved: bool) -> None:
    """Take `address` out of the local Service range in `netns` (`carved` True: a `blackhole`
    route for it in the local table, which wins over the range's `local` route), or give it
    back. Removing a route that is already gone is not an error."""
    route = ["blackhole", f"{address}/32", "table", "local"]
    if carved:
        run_in_netns(netns, ["ip", "route", "replace", *route])
        return
    with contextlib.suppress(EnvironmentProblem):
        run_in_netns(netns, ["ip", "route", "del", *route])


@contextlib.contextmanager
def running(process: NetnsProcess) -> Iterator[NetnsProcess]:
    process.start()
    try:
        yield process
    finally:
        process.stop()


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.chmod(0o644)
    os.replace(temporary, path)


class ReloadingConfigProxy(TrackingProxy):
    """A load-balancer daemon whose whole config is rewritten and reloaded on each change.

    Subclasses give `render` (pure: listeners to config text), `argv` (how to start the daemon in
    the foreground as its master process) and `reload_signal`.
    """

    reload_signal: ClassVar[signal.Signals] = signal.SIGHUP
    relays_connections: ClassVar[bool] = True
    """Connections run through this proxy's own process: they end when it restarts."""
    config_name: ClassVar[str] = "balancer.conf"
    packages: ClassVar[str] = ""  # what `apt-get install` brings the daemon

    def __init__(self, apply_timeout_s: float = APPLY_TIMEOUT_S) -> None:
        super().__init__()
        self.apply_timeout_s = apply_timeout_s
        self.user = Unprivileged()
        self.generation = 0
        self._stack = ExitStack()
        self._process: NetnsProcess | None = None
        self._directory = Path()
        self._config = ""
        self._carved: set[str] = set()

    @abstractmethod
    def render(self, listeners: Sequence[Listener], directory: Path) -> str:
        """The daemon's complete config for `listeners`, its files under `directory`. Pure."""

    @abstractmethod
    def argv(self, config: Path, directory: Path) -> list[str]:
        """The command that runs the daemon's master in the foreground with `config`."""

    # -- the Proxy contract -------------------------------------------------------------------
    def start(self, node: NodeContext) -> None:
        """Start the daemon with an empty config; EnvironmentProblem if it is not installed."""
        super().start(node)
        for program in ("setpriv", self.argv(Path(), Path())[0]):
            if shutil.which(program) is None:
                hint = self.packages if program != "setpriv" else "util-linux"
                raise EnvironmentProblem(
                    f"the {self.name} proxy needs `{program}`: apt-get install {hint}"
                )
        with ExitStack() as stack:
            self._directory = stack.enter_context(
                private_directory(node.workdir / self.name, self.user, node.prefix)
            )
            stack.enter_context(local_service_range(node.netns, node.service_cidr))
            stack.callback(self._carve, set())
            self._config = self.render((), self._directory)
            config = self._directory / self.config_name
            write_atomically(config, self._config)
            self._process = stack.enter_context(
                running(
                    NetnsProcess(
                        self.argv(config, self._directory),
                        netns=node.netns,
                        log=self._directory / "daemon.log",
                        user=self.user,
                        env=run_environment(node),
                    )
                )
            )
            self._await_generation(set(), (), node.service_cidr)
            self._stack = stack.pop_all()

    def program(self, services: Mapping[str, Service], changed: set[str]) -> None:
        assert self.node is not None and self._process is not None, "program() before start()"
        self._carve({s.cluster_ip for name, s in self.services.items() if name not in services})
        listeners = plan_listeners(services, self.slices_of, self.node.node)
        text = self.render(listeners, self._directory)
        if text == self._config:
            return
        old_workers = children(self._process.pid)
        write_atomically(self._directory / self.config_name, text)
        self._config = text
        self._signal_reload()
        self._await_generation(old_workers, listeners, self.node.service_cidr)

    def _carve(self, wanted: set[str]) -> None:
        """Carve exactly the VIPs `wanted` (those of opted-out Services) out of the local range."""
        assert self.node is not None
        for address in sorted(wanted - self._carved):
            carve_out(self.node.netns, address, True)
        for address in sorted(self._carved - wanted):
            carve_out(self.node.netns, address, False)
        self._carved = set(wanted)

    def stop(self) -> None:
        """End the daemon (TERM, then KILL), remove the VIP routes and the private directory."""
        self._process = None
        self._stack.close()

    # -- knowing a configuration is live ------------------------------------------------------
    def _signal_reload(self) -> None:
        """Send the reload signal once the master handles it (not while it starts or re-execs)."""
        assert self._process is not None
        process = self._process
        deadline_s = time.monotonic() + self.apply_timeout_s
        while not handles_signal(process.pid, self.reload_signal):
            if not process.alive() or time.monotonic() > deadline_s:
                raise ProxyFailure(
                    self.name,
                    f"never became ready for {self.reload_signal.name} (configuration "
                    f"#{self.generation + 1})",
                    process.tail(),
                )
            time.sleep(POLL_S)
        process.signal(self.reload_signal)

    def _await_generation(
        self, old_workers: set[int], listeners: Sequence[Listener], cidr: str
    ) -> None:
        assert self._process is not None
        self.generation += 1
        process = self._process
        network = ipaddress.ip_network(cidr)
        expected = {(listener.address, listener.port) for listener in listeners}
        deadline_s = time.monotonic() + self.apply_timeout_s
        while True:
            if not process.alive():
                raise ProxyFailure(
                    self.name,
                    f"exited (code {process.returncode()}) applying configuration "
                    f"#{self.generation}",
                    process.tail(),
                )
            workers = children(process.pid)
            listening = {
                address
                for address in listening_sockets(process.pid).values()
                if ipaddress.ip_address(address[0]) in network or address[0] == NODE_PORT_ADDRESS
            }
            if (
                workers - old_workers
                and not any(holds_listener(pid) for pid in workers & old_workers)
                and listening == expected
            ):
                return
            if time.monotonic() > deadline_s:
                raise ProxyFailure(
                    self.name,
                    f"did not apply configuration #{self.generation} within "
                    f"{self.apply_timeout_s:g} s (listening on {sorted(listening)}, "
                    f"expected {sorted(expected)})",
                    process.tail(),
                )
            time.sleep(POLL_S)
