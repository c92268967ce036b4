"""What an external proxy sends back, fuzzed: each bad reply is one ProxyFailure, and the proxy
is stopped.

A fake proxy (a few lines of sh, in the test's own namespace: `enter_netns=False`) answers the
five requests of a short session (hello, service_add, endpoint_slice_add, sync, shutdown) with
bytes the test chose: a good reply, or garbage (any bytes, broken replies, other JSON, lines
that are not UTF-8, hold NUL, never end, run past 1 MiB), the wrong seq, an error, output before
the first request or a second line for one request, an exit before answering, or silence.

Which reply is the first bad one is decided by the test's own reading of the protocol
(docs/candidate-proxy.md, "Replies"), not by the harness's. The session must then end exactly
there: one `ProxyFailure` (or, for shutdown, `shutdown_failure`) whose one-line message names the
request (`sync #4`) and, for a reply that is not one, the offending bytes and the fix (the reply
it should have sent, with its seq); the proxy's processes are gone right after the failure, and
its log after `stop()`. A session of good replies ends without any failure.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from harness.proxies.base import NodeContext
from harness.proxies.external import LOG_NAME, ExternalProxy, Timeouts, shown
from harness.proxies.failure import ProxyFailure
from harness.proxies.process import group_alive
from harness.proxies.protocol import MAX_LINE_BYTES
from tests.hostile.conftest import Inputs, fuzz_settings, sizes
from tests.hostile.hostile import broken, hostile_json
from tests.plugins.test_external import SLICE, WEB

REQUESTS = ("hello", "service_add", "endpoint_slice_add", "sync", "shutdown")
FAST = Timeouts(hello_s=1.0, message_s=0.25, sync_s=0.25, shutdown_s=0.25)
"""The fake answers at once; a silent one costs its timeout, so silence is drawn rarely."""
FAKE = """d=$1
cat "$d/pre" 2>/dev/null
n=1
while IFS= read -r line; do
  [ -e "$d/reply$n" ] && cat "$d/reply$n"
  [ -e "$d/exit$n" ] && exit "$(cat "$d/exit$n")"
  [ -e "$d/silent$n" ] && exec sleep 30
  [ "$n" -ge 5 ] && exit 0
  n=$((n+1))
done
"""


@dataclass(frozen=True)
class Answer:
    """What the fake does for one request: write `reply` (may be empty), then maybe exit with
    `exit_code` or fall silent."""

    reply: bytes
    exit_code: int | None = None
    silent: bool = False


def good(seq: int) -> bytes:
    return json.dumps({"ok": True, "seq": seq}).encode() + b"\n"


def is_good(answer: Answer, seq: int) -> bool:
    """The protocol as the docs state it, read independently of the harness: exactly one line,
    a JSON object of ok (true), maybe seq (that request's, a JSON integer) and error; and the
    proxy goes on running."""
    data = answer.reply
    if answer.exit_code is not None or answer.silent or data.count(b"\n") != 1:
        return False
    if not data.endswith(b"\n"):
        return False
    try:
        value = json.loads(data)
    except ValueError:
        return False
    if not isinstance(value, dict) or set(value) - {"ok", "seq", "error", "version"}:
        return False
    if "version" in value and not (
        isinstance(value["version"], str) and len(value["version"]) <= 200
    ):
        return False
    if value.get("ok") is not True:
        return False
    if "error" in value and not (isinstance(value["error"], str) and len(value["error"]) <= 4096):
        return False
    if "seq" not in value:
        return True
    number = value["seq"]
    integral = isinstance(number, int | float) and not isinstance(number, bool)
    return integral and number == seq  # JSON Schema: 4.0 is an integer


@st.composite
def bad_reply(draw: st.DrawFn, seq: int) -> Answer:
    kind = draw(
        st.sampled_from(
            [
                "bytes",
                "broken",
                "json",
                "wrong seq",
                "refuse",
                "extra key",
                "two lines",
                "no newline",
                "exit",
                "huge",
                "nul",
                "not utf-8",
                "empty line",
            ]
        ),
        label="bad",
    )
    line = good(seq).rstrip(b"\n")
    if kind == "bytes":
        return Answer(draw(st.binary(max_size=40)) + b"\n")
    if kind == "broken":
        document = draw(broken({"ok": True, "seq": seq}, ("error", "ok", "seq", "id")))
        return Answer(json.dumps(document).encode("utf-8", "surrogatepass") + b"\n")
    if kind == "json":
        return Answer(json.dumps(draw(hostile_json())).encode("utf-8", "surrogatepass") + b"\n")
    if kind == "wrong seq":
        other = draw(st.integers(-3, 2**70).filter(lambda n: n != seq))
        return Answer(json.dumps({"ok": True, "seq": other}).encode() + b"\n")
    if kind == "refuse":
        error = draw(st.text(max_size=30))
        return Answer(json.dumps({"ok": False, "seq": seq, "error": error}).encode() + b"\n")
    if kind == "extra key":
        return Answer(json.dumps({"ok": True, "seq": seq, "detail": "x"}).encode() + b"\n")
    if kind == "two lines":
        return Answer(line + b"\n" + line + b"\n")
    if kind == "no newline":
        ending = draw(st.sampled_from(["exit"] * 6 + ["silent", "wait"]))
        return Answer(line, silent=ending == "silent", exit_code=0 if ending == "exit" else None)
    if kind == "exit":
        return Answer(b"", exit_code=draw(st.sampled_from([0, 1, 2, 127, 255])))
    if kind == "huge":
        return Answer(b'{"ok": true, "error": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n')
    if kind == "nul":
        return Answer(line[:5] + b"\x00" + line[5:] + b"\n")
    if kind == "not utf-8":
        return Answer(b'{"ok": true, "error": "\xff\xfe"}\n')
    return Answer(b"\n")


@st.composite
def sessions(draw: st.DrawFn) -> tuple[bytes, list[Answer]]:
    """Unsolicited output before hello (usually none), and an answer per request."""
    before = draw(st.sampled_from([b""] * 8 + [b"starting up\n", b"\x00\xff"]))
    answers = []
    for seq in range(1, len(REQUESTS) + 1):
        choice = draw(st.sampled_from(["good"] * 6 + ["bad"] * 5 + ["silent"]), label="answer")
        if choice == "good":
            answers.append(Answer(good(seq)))
        elif choice == "silent" and seq > 1:
            answers.append(Answer(b"", silent=True))
        else:
            answers.append(draw(bad_reply(seq)))
    return before, answers


def first_bad(before: bytes, answers: list[Answer]) -> int | None:
    """The request whose answer the session must fail at (1-based), None if none is bad."""
    if before:
        return 1
    for seq, answer in enumerate(answers, 1):
        if not is_good(answer, seq):
            return seq
    return None


def write_fake(directory: Path, before: bytes, answers: list[Answer]) -> str:
    directory.mkdir()
    (directory / "pre").write_bytes(before)
    for seq, answer in enumerate(answers, 1):
        (directory / f"reply{seq}").write_bytes(answer.reply)
        if answer.exit_code is not None:
            (directory / f"exit{seq}").write_text(str(answer.exit_code))
        if answer.silent:
            (directory / f"silent{seq}").touch()
    script = directory.parent / "fake.sh"
    if not script.exists():
        script.write_text(FAKE)
    return f"sh {script} {directory}"


def play(command: str, node: NodeContext) -> tuple[ExternalProxy, ProxyFailure | None, int]:
    """Run the session; the failure raised (None if none), and the proxy's process id."""
    proxy = ExternalProxy(command, timeouts=FAST, enter_netns=False)
    pid = 0
    try:
        try:
            proxy.start(node)
        finally:
            pid = proxy._process.pid if proxy._process is not None else 0
        proxy.on_service_add(WEB)
        proxy.on_endpoint_slice_add(SLICE)
        proxy.sync()
    except ProxyFailure as failure:
        return proxy, failure, pid
    return proxy, None, pid


def check_message(failure: ProxyFailure, seq: int, answer: Answer | None) -> None:
    message = str(failure)
    assert "\n" not in message and len(message) < 2000, message
    assert f"{REQUESTS[seq - 1]} #{seq}" in message, (seq, message)
    if "nobody asked for" in message:
        assert "b'" in message or 'b"' in message, message  # what it sent, quoted
        return
    if answer is None:
        return
    if answer.exit_code is not None and b"\n" not in answer.reply:
        assert f"exited (code {answer.exit_code})" in message, message
    elif answer.silent and not answer.reply:
        assert "did not answer" in message and f'"seq": {seq}' in message, message
    elif message.startswith("proxy 'external' refused "):
        assert json.loads(answer.reply)["ok"] is False, message
    else:
        assert f'"seq": {seq}' in message, message  # the reply it should have sent
        assert "b'" in message or 'b"' in message, message  # what it sent instead


@sizes(300, 3000)
def test_every_bad_reply_is_one_failure_that_names_it_and_the_fix(
    tmp_path: Path, inputs: Inputs, examples: int
) -> None:
    count = iter(range(1_000_000))

    @fuzz_settings(examples)
    @given(sessions())
    def one(session: tuple[bytes, list[Answer]]) -> None:
        before, answers = session
        number = next(count)
        command = write_fake(tmp_path / f"s{number}", before, answers)
        node = NodeContext("node-1", "hk00000-node", "hk00000", tmp_path / f"w{number}")
        began = time.monotonic()
        proxy, failure, pid = play(command, node)
        expected = first_bad(before, answers)
        try:
            if failure is not None:
                assert not group_alive(pid), "the proxy still runs after its failure"
        finally:
            proxy.stop()  # a failure while it asks for shutdown is kept, not raised
        assert not (node.workdir / LOG_NAME).exists()
        assert not group_alive(pid)
        reported = failure or proxy.shutdown_failure
        if expected is None:
            assert reported is None, str(reported)
        else:
            assert reported is not None, f"the bad answer to #{expected} went unnoticed"
            seq = int(reported.problem.split("#", 1)[1].split()[0].rstrip(",;:"))
            assert seq == expected, (seq, expected, str(reported))
            check_message(reported, seq, None if before else answers[seq - 1])
        inputs.tried("good session" if expected is None else f"bad at #{expected}")
        assert time.monotonic() - began < 10

    one()
    inputs.at_least(examples)


def test_shown_quotes_bytes_on_one_line() -> None:
    assert shown(b"ok\n") == "b'ok\\n'"
    long = shown(b"\xff" * 1000)
    assert long.endswith("(1,000 bytes)") and "\n" not in long
