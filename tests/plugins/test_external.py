"""ExternalProxy: the JSON-lines protocol, and every way a proxy can fail it (no root needed)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from harness.errors import EXIT_VIOLATION, UsageError, Violation
from harness.model.objects import Endpoint, EndpointPort, EndpointSlice, Service, ServicePort
from harness.proxies.base import NodeContext
from harness.proxies.external import ExternalProxy, Timeouts
from harness.proxies.failure import ProxyFailure
from harness.proxies.protocol import check_request
from harness.registry import TargetOptions
from tests.plugins.fakes import fake_proxy

FIRST_SYNC = ["hello", "service_add", "endpoint_slice_add", "sync"]
FAST = Timeouts(hello_s=2.0, message_s=1.0, sync_s=1.0, shutdown_s=1.0)
WEB = Service("web", "10.96.0.10", (("app", "web"),), ports=(ServicePort("http", 80, 8080),))
SLICE = EndpointSlice(
    "web",
    (EndpointPort("http", 8080),),
    (Endpoint("10.244.0.10", "web-0", "u1", "node-1", "zone-a", True, True, False),),
    name="web-0",
)


def node(tmp_path: Path) -> NodeContext:
    return NodeContext("node-1", "hk00000-node", "hk00000", tmp_path / "work")


def started(tmp_path: Path, behaviour: str) -> tuple[ExternalProxy, Path]:
    command, record = fake_proxy(tmp_path, behaviour)
    proxy = ExternalProxy(command, timeouts=FAST, enter_netns=False)
    proxy.start(node(tmp_path))
    return proxy, record


def requests(record: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_messages_are_queued_until_sync_then_sent_in_order(tmp_path: Path) -> None:
    proxy, record = started(tmp_path, "good")
    try:
        proxy.on_service_add(WEB)
        proxy.on_endpoint_slice_add(SLICE)
        assert [m["type"] for m in requests(record)] == ["hello"]  # handlers program nothing
        proxy.sync()
        proxy.on_endpoint_slice_delete(SLICE)
        proxy.on_service_delete(WEB)
        proxy.sync()
    finally:
        proxy.stop()
    sent = requests(record)
    assert [m["type"] for m in sent] == [
        *FIRST_SYNC,
        "endpoint_slice_delete",
        "service_delete",
        "sync",
        "shutdown",
    ]
    assert [m["seq"] for m in sent] == list(range(1, len(sent) + 1))
    for message in sent:
        check_request(message)
    hello = sent[0]
    assert hello["protocol"] == 1
    assert hello["node"] == {
        "name": "node-1",
        "netns": "hk00000-node",
        "prefix": "hk00000",
        "workdir": str(tmp_path / "work"),
        "service_cidr": "10.96.0.0/16",
    }
    endpoint = sent[2]["endpoint_slice"]["endpoints"][0]  # type: ignore[index]
    assert endpoint == {
        "address": "10.244.0.10",
        "pod": "web-0",
        "uid": "u1",
        "node": "node-1",
        "zone": "zone-a",
        "ready": True,
        "serving": True,
        "terminating": False,
    }
    assert proxy.shutdown_failure is None
    assert not (tmp_path / "work" / "external-proxy.log").exists()


def test_updates_carry_old_and_new(tmp_path: Path) -> None:
    proxy, record = started(tmp_path, "good")
    try:
        proxy.on_service_update(WEB, Service("web", "10.96.0.10", (("app", "api"),)))
        proxy.on_endpoint_slice_update(SLICE, EndpointSlice("web", (), (), name="web-0"))
        proxy.sync()
    finally:
        proxy.stop()
    update, slice_update = requests(record)[1:3]
    assert update["type"] == "service_update" and update["old"]["name"] == "web"  # type: ignore[index]
    assert slice_update["endpoint_slice"]["endpoints"] == []  # type: ignore[index]
    assert len(slice_update["old"]["endpoints"]) == 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("behaviour", "problem", "stderr"),
    [
        ("crash_on_sync", "exited (code 3) before answering sync #3", "KeyError: 'boom'"),
        ("hang_on_sync", "did not answer sync #3 within 1 s", "thinking forever"),
        ("garbage_on_sync", "answered sync #3 with garbage, b'synced!': not JSON", ""),
        ("extra_field", 'answered hello #1 with garbage, b\'{"ok": true, "detail"', ""),
        ("refuse_sync", "refused sync #3: cannot program that", ""),
        # the duplicate is seen before the next request is sent, or read as its answer:
        # which one depends on when it reached the pipe; both name it
        (
            "double_reply",
            (
                "nobody asked for after its answer to service_add #2",
                "answered sync #3 with output nobody asked for: a second reply to #2",
            ),
            "",
        ),
        ("wrong_seq", "answered hello #1 with the reply to #2", ""),
        ("old_protocol", "refused hello #1: I speak protocol 0 only", ""),
    ],
)
def test_a_broken_proxy_is_a_violation_with_its_stderr(
    tmp_path: Path, behaviour: str, problem: str | tuple[str, ...], stderr: str
) -> None:
    command, _ = fake_proxy(tmp_path, behaviour)
    proxy = ExternalProxy(command, timeouts=FAST, enter_netns=False)
    began = time.monotonic()
    try:
        with pytest.raises(ProxyFailure) as raised:
            proxy.start(node(tmp_path))
            proxy.on_service_add(WEB)
            proxy.sync()
        with pytest.raises(ProxyFailure):  # a failed proxy stays failed
            proxy.sync()
    finally:
        proxy.stop()
    assert time.monotonic() - began < 6
    failure = raised.value
    assert isinstance(failure, Violation) and failure.exit_code == EXIT_VIOLATION
    wordings = problem if isinstance(problem, tuple) else (problem,)
    assert any(wording in str(failure) for wording in wordings), str(failure)
    assert "\n" not in str(failure)
    assert stderr in failure.stderr_tail
    assert failure.evidence["stderr_tail"] == failure.stderr_tail


def test_the_version_a_proxy_declares_in_its_hello_reply_is_kept(tmp_path: Path) -> None:
    """`version` is optional (docs/candidate-proxy.md, "Replies"): kept from hello's reply,
    None for a proxy that declares none."""
    proxy, _ = started(tmp_path, "declares_version")
    silent, _ = started(tmp_path, "good")
    try:
        proxy.sync()
        assert proxy.declared_version == "fake-proxy 0.3.1"
        assert silent.declared_version is None
    finally:
        proxy.stop()
        silent.stop()


def test_a_proxy_silent_at_start_fails_the_hello(tmp_path: Path) -> None:
    command, _ = fake_proxy(tmp_path, "silent_start")
    proxy = ExternalProxy(command, timeouts=FAST, enter_netns=False)
    try:
        with pytest.raises(ProxyFailure, match="did not answer hello #1 within 2 s"):
            proxy.start(node(tmp_path))
    finally:
        proxy.stop()


def test_a_command_that_does_not_exist_is_a_proxy_failure(tmp_path: Path) -> None:
    proxy = ExternalProxy("hk-no-such-proxy --flag", timeouts=FAST, enter_netns=False)
    try:
        with pytest.raises(ProxyFailure, match="exited \\(code 127\\)") as raised:
            proxy.start(node(tmp_path))
    finally:
        proxy.stop()
    assert "not found" in raised.value.stderr_tail


def test_stop_kills_a_proxy_that_ignores_shutdown_and_term(tmp_path: Path) -> None:
    proxy, _ = started(tmp_path, "ignore_shutdown")
    began = time.monotonic()
    proxy.stop()
    assert time.monotonic() - began < 6
    assert proxy.shutdown_failure is not None
    assert "did not answer shutdown" in str(proxy.shutdown_failure)
    proxy.stop()  # twice is harmless


def test_stop_ends_the_processes_the_proxy_forked(tmp_path: Path) -> None:
    proxy, record = started(tmp_path, "forks_child")
    child = int(Path(f"{record}.child").read_text())
    proxy.stop()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _running(child):
        time.sleep(0.05)
    assert not _running(child)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_from_options_needs_a_command() -> None:
    with pytest.raises(UsageError, match="--proxy-command"):
        ExternalProxy.from_options(TargetOptions())
    assert ExternalProxy.from_options(TargetOptions(proxy_command="./p")).command == "./p"


def test_an_empty_command_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        ExternalProxy("   ")


def test_the_environment_names_the_run(tmp_path: Path) -> None:
    script = tmp_path / "env.py"
    script.write_text(
        "import json, os, sys\n"
        "line = sys.stdin.readline()\n"
        "open(sys.argv[1], 'w').write(json.dumps(dict(os.environ)))\n"
        "print(json.dumps({'ok': True}), flush=True)\n"
        "sys.stdin.readline()\n"
        "print(json.dumps({'ok': True}), flush=True)\n"
    )
    seen = tmp_path / "env.json"
    proxy = ExternalProxy(f"{sys.executable} {script} {seen}", enter_netns=False)
    proxy.start(node(tmp_path))
    proxy.stop()
    environment = json.loads(seen.read_text())
    assert environment["HARNESS_RUN_PREFIX"] == "hk00000"
    assert environment["HARNESS_NODE"] == "node-1"
    assert environment["HARNESS_PROXY_PROTOCOL"] == "1"


def test_a_restarted_proxy_is_sent_the_whole_current_state(tmp_path: Path) -> None:
    command, record = fake_proxy(tmp_path, "good")
    proxy = ExternalProxy(command, timeouts=FAST, enter_netns=False)
    proxy.start(node(tmp_path))
    proxy.on_service_add(WEB)
    proxy.on_endpoint_slice_add(SLICE)
    proxy.on_service_add(Service("gone", "10.96.0.11", (("app", "x"),)))
    proxy.on_service_delete(Service("gone", "10.96.0.11", (("app", "x"),)))
    proxy.sync()
    proxy.stop()
    record.write_text("")
    proxy.start(node(tmp_path))
    proxy.sync()
    proxy.stop()
    sent = requests(record)
    assert [m["type"] for m in sent] == [*FIRST_SYNC, "shutdown"]
    assert sent[1]["service"]["name"] == "web"  # type: ignore[index]
    assert sent[0]["seq"] == 1


def test_a_failure_is_one_line_whatever_the_proxy_says() -> None:
    failure = ProxyFailure("external", "refused sync #2: first\nsecond\tthird", "a\n" + "x" * 900)
    assert str(failure) == (
        "proxy 'external' refused sync #2: first second third; stderr ends: " + "x" * 199 + "…"
    )
    assert failure.stderr_tail.endswith("x" * 900)
