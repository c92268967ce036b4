"""The client request loop: its shell script run for real (curl, on 127.0.0.1) and its parsing.

In a cluster the script runs in a client pod through `pods/exec`; here it runs in a local shell
against loopback servers, which checks what matters: one connection per request by default,
`connections` connections with keep-alive, and how failures are classified.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.errors import UsageError
from harness.kube.traffic import build_command, parse_output, parse_peer
from harness.local.names import new_prefix
from harness.model.objects import Backend
from harness.traffic import ErrorKind, TrafficRequest

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0
    reports_source = True

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()

    def do_GET(self) -> None:
        body = b"web-a--u1" if self.path == "/hostname" else b"?"
        if self.path == "/clientip" and type(self).reports_source:  # agnhost netexec's answer
            body = f"{self.client_address[0]}:{self.client_address[1]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"connections": 0})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def run(request: TrafficRequest, port: int, report_source: bool = False) -> str:
    argv = build_command(request, "127.0.0.1", port, report_source)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout


def test_fresh_connection_per_request(server: tuple[int, type[_Handler]]) -> None:
    port, handler = server
    request = TrafficRequest("web", count=5)
    outcomes = parse_output(run(request, port), request)
    assert [o.backend for o in outcomes] == [Backend("web-a", "u1")] * 5
    assert [o.connection for o in outcomes] == [0, 1, 2, 3, 4]
    assert all(o.error is None and o.latency_ms >= 0 for o in outcomes)
    assert handler.connections == 5


def test_keep_alive_spreads_requests_over_connections(server: tuple[int, type[_Handler]]) -> None:
    port, handler = server
    request = TrafficRequest("web", count=7, keep_alive=True, connections=3)
    outcomes = parse_output(run(request, port), request)
    assert len(outcomes) == 7 and all(o.backend == Backend("web-a", "u1") for o in outcomes)
    assert [o.connection for o in outcomes] == [0, 1, 2, 0, 1, 2, 0]
    assert handler.connections == 3


def test_refused_connections_are_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nobody listens
    request = TrafficRequest("web", count=3, timeout_s=1.0)
    outcomes = parse_output(run(request, port), request)
    assert [o.error for o in outcomes] == [ErrorKind.REFUSED] * 3


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace")
def test_no_route_to_host_is_not_a_refusal() -> None:
    """curl exits 7 for both; only ECONNREFUSED is the REJECT `reject-when-empty` accepts. A
    throw-away namespace (the run prefix's name, no link) whose only route is unreachable."""
    netns = f"{new_prefix()}-curl"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        inside = ["ip", "netns", "exec", netns]
        subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run([*inside, "ip", "route", "add", "unreachable", "10.96.0.0/12"], check=True)
        request = TrafficRequest("web", count=2, timeout_s=1.0)
        unreachable = build_command(request, "10.96.0.10", 80)
        refused = build_command(request, "127.0.0.1", 1)
        for argv, expected in ((unreachable, ErrorKind.OTHER), (refused, ErrorKind.REFUSED)):
            done = subprocess.run([*inside, *argv], capture_output=True, text=True, timeout=30)
            outcomes = parse_output(done.stdout, request)
            assert [o.error for o in outcomes] == [expected] * 2, done.stdout
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("\n7 0.001\n! Connection refused\n", [ErrorKind.REFUSED]),
        ("\n7 0.001\n! No route to host\n", [ErrorKind.OTHER]),
        ("\n7 0.001\n", [ErrorKind.OTHER]),  # no reason given: never taken for a refusal
        # keep-alive: one curl, two transfers, then their reasons in order
        ("\n7 0.001\n\n7 0.001\n! Connection refused\n! Network is unreachable\n",
         [ErrorKind.REFUSED, ErrorKind.OTHER]),
        ("web-a--u1\n0 0.001\n\n7 0.001\n! Connection refused\n", [None, ErrorKind.REFUSED]),
    ],
)  # fmt: skip
def test_a_failed_connect_is_a_refusal_only_when_its_reason_says_so(
    output: str, expected: list[ErrorKind | None]
) -> None:
    request = TrafficRequest("web", count=len(expected))
    assert [o.error for o in parse_output(output, request)] == expected


def test_silent_server_times_out_within_the_bound() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts the handshake, never answers
        request = TrafficRequest("web", count=2, timeout_s=0.3)
        outcomes = parse_output(run(request, silent.getsockname()[1]), request)
    assert [o.error for o in outcomes] == [ErrorKind.TIMEOUT] * 2
    assert all(o.latency_ms < 2000 for o in outcomes)


def test_cut_short_output_reports_every_request() -> None:
    request = TrafficRequest("web", count=3)
    outcomes = parse_output("web-b--u4\n0 0.002000\n", request)
    assert outcomes[0].backend == Backend("web-b", "u4")
    assert [o.error for o in outcomes[1:]] == [ErrorKind.TIMEOUT] * 2


def test_answers_that_are_not_pod_names_are_errors() -> None:
    request = TrafficRequest("web", count=2)
    outcomes = parse_output("<html>\n0 0.1\n\n56 0.2\n", request)
    assert [o.error for o in outcomes] == [ErrorKind.OTHER, ErrorKind.RESET]


def test_only_ip_addresses_reach_the_script() -> None:
    with pytest.raises(UsageError):
        build_command(TrafficRequest("web"), "example.com; rm -rf /", 80)


def test_a_parallel_batch_opens_every_connection_at_once_and_parses_in_send_order(
    server: tuple[int, type[_Handler]],
) -> None:
    """`TrafficRequest.parallel` (a sample the model expects dropped, or the one a Service that
    missed its deadline is judged by): one curl per request, all at once, printed in order."""
    port, handler = server
    request = TrafficRequest("web", count=12, parallel=True)
    outcomes = parse_output(run(request, port), request)
    assert [o.backend for o in outcomes] == [Backend("web-a", "u1")] * 12
    assert [o.connection for o in outcomes] == list(range(12))
    assert handler.connections == 12
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    refused = TrafficRequest("web", count=4, timeout_s=1.0, parallel=True)
    assert [o.error for o in parse_output(run(refused, closed), refused)] == [
        ErrorKind.REFUSED
    ] * 4  # each transfer keeps its own reason


def test_parallel_connections_are_held_at_the_same_time() -> None:
    """Against a server that accepts and never answers, all of a parallel batch's connections
    are open together (one by one, only one ever is); every request times out."""
    held: list[socket.socket] = []
    peak = 0
    lock = threading.Lock()

    def hold(listener: socket.socket) -> None:
        nonlocal peak
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with lock:
                held.append(connection)
                open_now = [c for c in held if not _closed_by_peer(c)]
                peak = max(peak, len(open_now))

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(32)
        thread = threading.Thread(target=hold, args=(listener,), daemon=True)
        thread.start()
        request = TrafficRequest("web", count=8, timeout_s=1.0, parallel=True)
        outcomes = parse_output(run(request, listener.getsockname()[1]), request)
    for connection in held:
        connection.close()
    assert [o.error for o in outcomes] == [ErrorKind.TIMEOUT] * 8
    assert peak >= 4, peak


def _closed_by_peer(connection: socket.socket) -> bool:
    """Whether the client closed it: what it sent (its request) is read and dropped first."""
    connection.setblocking(False)
    try:
        while connection.recv(4096):
            pass
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


@pytest.mark.parametrize("parallel", [False, True])
def test_each_connection_reports_the_source_its_pod_saw_over_the_same_connection(
    server: tuple[int, type[_Handler]], parallel: bool
) -> None:
    port, handler = server
    request = TrafficRequest("web", count=3, parallel=parallel)
    outcomes = parse_output(run(request, port, report_source=True), request, report_source=True)
    assert [o.backend for o in outcomes] == [Backend("web-a", "u1")] * 3
    assert [o.seen_source for o in outcomes] == ["127.0.0.1"] * 3
    assert [o.connection for o in outcomes] == [0, 1, 2]
    assert handler.connections == 3  # /clientip asked over each /hostname's connection


def test_a_pod_that_does_not_report_its_source_leaves_it_unknown(
    server: tuple[int, type[_Handler]],
) -> None:
    port, handler = server
    handler.reports_source = False
    request = TrafficRequest("web", count=2)
    outcomes = parse_output(run(request, port, report_source=True), request, report_source=True)
    assert [(o.backend, o.seen_source) for o in outcomes] == [(Backend("web-a", "u1"), None)] * 2


def test_a_refused_connection_reporting_sources_is_one_attempt() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    request = TrafficRequest("web", count=2, timeout_s=1.0)
    output = run(request, port, report_source=True)
    assert output.count("Connection refused") == 2  # --fail-early: no second connect
    outcomes = parse_output(output, request, report_source=True)
    assert [(o.error, o.seen_source) for o in outcomes] == [(ErrorKind.REFUSED, None)] * 2


def test_a_lost_clientip_transfer_keeps_the_backend_and_pairs_the_rest() -> None:
    output = "a--u1\n0 0.01\n\n56 0.01\nb--u2\n0 0.01\n10.0.0.7:5\n0 0.01\n\n28 1\n"
    request = TrafficRequest("web", count=3)
    outcomes = parse_output(output, request, report_source=True)
    assert [(o.backend, o.seen_source, o.error) for o in outcomes] == [
        (Backend("a", "u1"), None, None),
        (Backend("b", "u2"), "10.0.0.7", None),
        (None, None, ErrorKind.TIMEOUT),
    ]


@pytest.mark.parametrize(
    ("answer", "address"),
    [
        ("10.0.0.5:43210", "10.0.0.5"),
        ("[fd00::5]:43210", "fd00::5"),
        ("10.0.0.5", "10.0.0.5"),
        ("fd00::5", "fd00::5"),
        ("web-a--u1", None),
        ("not-an-ip:80", None),
    ],
)
def test_clientip_answers_are_read_as_addresses(answer: str, address: str | None) -> None:
    assert parse_peer(answer) == address
