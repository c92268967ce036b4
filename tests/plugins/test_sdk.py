"""The Python SDK for external proxies: it answers every request and hands the proxy the right
backends (CategorizeEndpoints on the raw conditions, per port, per node)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from harness.model.objects import (
    Affinity,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Service,
    ServicePort,
    TrafficPolicy,
)
from harness.proxies import sdk
from harness.proxies.base import NodeContext
from harness.proxies.protocol import endpoint_slice_json, hello, service_json

NODE = "node-1"


def web(**fields: Any) -> Service:
    ports = (ServicePort("http", 80, "http"), ServicePort("admin", 81, "admin"))
    return Service("web", "10.96.0.10", (), ports=ports, **fields)


def endpoint(
    n: int, *, ready: bool = True, terminating: bool = False, node: str = NODE
) -> Endpoint:
    serving = ready or terminating
    return Endpoint(f"10.0.0.{n}", f"web-{n}", f"u{n}", node, "zone-a", ready, serving, terminating)


def web_slice(*endpoints: Endpoint, name: str = "web-0") -> EndpointSlice:
    return EndpointSlice("web", (EndpointPort("http", 8080),), endpoints, name=name)


class Recorder:
    """The proxy's callbacks: they record what they were given, and can be told to fail."""

    def __init__(self) -> None:
        self.programs: list[list[sdk.ServicePort]] = []
        self.nodes: list[NodeContext] = []
        self.stops = 0
        self.fail_with: Exception | None = None

    async def program(self, ports: list[sdk.ServicePort]) -> None:  # a coroutine, awaited
        if self.fail_with is not None:
            raise self.fail_with
        self.programs.append(ports)

    def start(self, node: NodeContext) -> None:  # a plain function, called
        self.nodes.append(node)

    def stop(self) -> None:
        self.stops += 1


def run(tmp_path: Path, recorder: Recorder, *messages: dict[str, Any] | str) -> list[Any]:
    """Serve `messages` (hello first) and return the replies, parsed."""
    node = NodeContext(NODE, "hk12345-node", "hk12345", tmp_path)
    lines = [json.dumps({**hello(node), "seq": 1})]
    for seq, message in enumerate(messages, start=2):
        lines.append(message if isinstance(message, str) else json.dumps({**message, "seq": seq}))
    stdout = io.StringIO()
    stdin = io.StringIO("".join(line + "\n" for line in lines))
    sdk.serve(
        recorder.program, start=recorder.start, stop=recorder.stop, stdin=stdin, stdout=stdout
    )
    return [json.loads(line) for line in stdout.getvalue().splitlines()]


def add(obj: Service | EndpointSlice) -> dict[str, Any]:
    if isinstance(obj, Service):
        return {"type": "service_add", "service": service_json(obj)}
    return {"type": "endpoint_slice_add", "endpoint_slice": endpoint_slice_json(obj)}


def delete(obj: Service | EndpointSlice) -> dict[str, Any]:
    message = add(obj)
    message["type"] = message["type"].replace("_add", "_delete")
    return message


SYNC = {"type": "sync"}
SHUTDOWN = {"type": "shutdown"}


def backends_after(tmp_path: Path, *messages: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    recorder = Recorder()
    replies = run(tmp_path, recorder, *messages, SYNC)
    assert all(reply["ok"] for reply in replies), replies
    return {port.name: port.backends for port in recorder.programs[-1]}


def test_every_request_is_answered_ok_in_order_and_shutdown_ends_the_session(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    replies = run(tmp_path, recorder, add(web()), SYNC, SHUTDOWN, SYNC)
    assert replies == [{"ok": True, "seq": seq} for seq in (1, 2, 3, 4)]  # not the sync after
    assert recorder.nodes[0].node == NODE and recorder.nodes[0].workdir == tmp_path
    assert recorder.stops == 1


def test_the_end_of_stdin_stops_the_proxy_too(tmp_path: Path) -> None:
    recorder = Recorder()
    run(tmp_path, recorder, add(web()))
    assert recorder.stops == 1


def test_ready_endpoints_are_used_at_the_slices_port(tmp_path: Path) -> None:
    ports = backends_after(tmp_path, add(web()), add(web_slice(endpoint(2), endpoint(1))))
    assert ports == {"http": (("10.0.0.1", 8080), ("10.0.0.2", 8080)), "admin": ()}


def test_unready_endpoints_are_never_used(tmp_path: Path) -> None:
    ports = backends_after(
        tmp_path, add(web()), add(web_slice(endpoint(1), endpoint(2, ready=False)))
    )
    assert ports["http"] == (("10.0.0.1", 8080),)


def test_terminating_endpoints_serve_only_when_nothing_is_ready(tmp_path: Path) -> None:
    draining = endpoint(2, ready=False, terminating=True)
    assert backends_after(tmp_path, add(web()), add(web_slice(endpoint(1), draining)))["http"] == (
        ("10.0.0.1", 8080),
    )
    assert backends_after(tmp_path, add(web()), add(web_slice(draining)))["http"] == (
        ("10.0.0.2", 8080),
    )


def test_local_traffic_policy_keeps_this_nodes_endpoints(tmp_path: Path) -> None:
    service = web(internal_traffic_policy=TrafficPolicy.LOCAL)
    slice_ = web_slice(endpoint(1, node="node-2"), endpoint(2))
    assert backends_after(tmp_path, add(service), add(slice_))["http"] == (("10.0.0.2", 8080),)


def test_an_endpoint_listed_in_two_slices_is_one_backend(tmp_path: Path) -> None:
    ports = backends_after(
        tmp_path,
        add(web()),
        add(web_slice(endpoint(1))),
        add(web_slice(endpoint(1), endpoint(3), name="web-1")),
    )
    assert ports["http"] == (("10.0.0.1", 8080), ("10.0.0.3", 8080))


def test_deletions_take_backends_and_ports_away(tmp_path: Path) -> None:
    slice_ = web_slice(endpoint(1))
    assert backends_after(tmp_path, add(web()), add(slice_), delete(slice_))["http"] == ()
    assert backends_after(tmp_path, add(web()), add(slice_), delete(web())) == {}


def test_affinity_is_passed_with_its_timeout(tmp_path: Path) -> None:
    recorder = Recorder()
    sticky = web(session_affinity=Affinity.CLIENT_IP, affinity_timeout_s=30)
    run(tmp_path, recorder, add(sticky), SYNC, add(web()), SYNC)
    first, second = recorder.programs
    assert [p.affinity_timeout_s for p in first] == [30, 30]
    assert [p.affinity_timeout_s for p in second] == [None, None]
    assert first[0].address == ("10.96.0.10", 80) and first[0].service == "default/web"


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("{not json", "invalid request: not JSON"),
        (json.dumps({"type": "resync", "seq": 2}), "invalid request"),
        (
            json.dumps({**hello(NodeContext(NODE, "n", "p", Path("/w"))), "protocol": 2, "seq": 2}),
            "invalid request: protocol 2: this proxy speaks 1",
        ),
    ],
)
def test_bad_requests_get_an_error_reply_and_the_session_goes_on(
    tmp_path: Path, line: str, complaint: str
) -> None:
    replies = run(tmp_path, Recorder(), line, SYNC)
    assert replies[1]["ok"] is False and replies[1]["error"].startswith(complaint)
    assert replies[2] == {"ok": True, "seq": 3}


def test_a_failing_callback_is_an_error_reply_with_its_exception(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()
    recorder.fail_with = OSError("address already\nin use")
    replies = run(tmp_path, recorder, add(web()), SYNC)
    assert replies[2] == {"ok": False, "seq": 3, "error": "OSError: address already in use"}
    assert "Traceback" in capsys.readouterr().err


def test_a_request_before_hello_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    recorder = Recorder()
    stdout = io.StringIO()
    sdk.serve(recorder.program, stdin=io.StringIO('{"type": "sync", "seq": 1}\n'), stdout=stdout)
    reply = json.loads(stdout.getvalue())
    assert reply == {"ok": False, "seq": 1, "error": "invalid request: sync before hello"}
    assert recorder.programs == []
