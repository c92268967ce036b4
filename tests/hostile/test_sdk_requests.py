"""The SDK's side of the protocol, fed hostile requests: an error reply and it keeps serving.

`harness.proxies.sdk.serve` is what a Python candidate proxy runs. A session here is a list of
lines: requests the harness would send (hello, Service and slice changes, sync, shutdown), some
broken as JSON (`tests.hostile.hostile`), others replaced by garbage (any text, lone surrogates
as a bad byte arrives, deep nesting, huge numbers, empty lines, a line past the limit), repeated
or out of order. Every line up to a shutdown that was answered gets exactly one reply, valid
against the protocol's reply schema and echoing the request's seq when it had a valid one; a
line that is not a valid request gets `ok: false` naming why; the proxy's callbacks see only
valid requests after hello; `serve` returns (after shutdown, or at the end of stdin, calling
`stop` once) well within a bound, never hangs. A real process, fed raw bytes that are not
UTF-8 or hold NUL, keeps answering and exits cleanly when stdin closes.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from harness.proxies.base import NodeContext
from harness.proxies.protocol import (
    MAX_LINE_BYTES,
    ProtocolError,
    check_request,
    endpoint_slice_json,
    hello,
    parse_reply,
    service_json,
)
from harness.proxies.sdk import ServicePort as DesiredPort
from harness.proxies.sdk import serve
from tests.hostile.conftest import Inputs, fuzz_settings, sizes
from tests.hostile.hostile import DEEP, HUGE_NUMBER, broken, hostile_text
from tests.plugins.test_external import SLICE, WEB

SERVE_LIMIT_S = 10.0
NODE = NodeContext("node-1", "hk00000-node", "hk00000", Path("/nonexistent/work"))
REQUESTS: list[dict[str, Any]] = [
    hello(NODE),
    {"type": "service_add", "service": service_json(WEB)},
    {"type": "endpoint_slice_add", "endpoint_slice": endpoint_slice_json(SLICE)},
    {"type": "sync"},
    {"type": "service_update", "old": service_json(WEB), "service": service_json(WEB)},
    {"type": "endpoint_slice_delete", "endpoint_slice": endpoint_slice_json(SLICE)},
    {"type": "service_delete", "service": service_json(WEB)},
    {"type": "sync"},
]
KEYS = ("type", "seq", "protocol", "node", "service", "endpoint_slice", "old")


@st.composite
def lines(draw: st.DrawFn) -> list[str]:
    """A session's lines: the harness's requests in order, some broken or replaced, and a
    shutdown at the end (sometimes none, sometimes a broken one)."""
    out = []
    requests = [*REQUESTS, {"type": "shutdown"}] if draw(st.booleans()) else REQUESTS
    for seq, request in enumerate(requests, 1):
        message = {**request, "seq": seq}
        how = draw(st.sampled_from(["as is"] * 4 + ["broken", "garbage", "twice", "drop"]))
        if how == "drop":
            continue
        if how == "broken":
            message = draw(broken(message, KEYS), label="broken")
        if how == "garbage":
            out.append(draw(garbage()) + "\n")
            continue
        text = json.dumps(message)
        out += [text + "\n"] * (2 if how == "twice" else 1)
    return out


def garbage() -> st.SearchStrategy[str]:
    return st.one_of(
        hostile_text(40),
        st.sampled_from(
            [
                "",
                " ",
                "\udcff\udcfe",  # the bytes ff fe, as surrogateescape reads them
                "{}",
                "[]",
                "null",
                '{"type": "sync"}',
                '{"type": "hello", "seq": 1, "protocol": 2}',
                DEEP,
                HUGE_NUMBER,
                '{"seq": ' + HUGE_NUMBER + "}",
                "x" * (MAX_LINE_BYTES + 5),
            ]
        ),
    ).map(lambda text: text.replace("\n", " "))


class Callbacks:
    """The proxy's callbacks, recording what they were given."""

    def __init__(self) -> None:
        self.started: list[NodeContext] = []
        self.programmed: list[list[DesiredPort]] = []
        self.stopped = 0

    def start(self, node: NodeContext) -> None:
        self.started.append(node)

    async def program(self, ports: list[DesiredPort]) -> None:
        self.programmed.append(ports)

    def stop(self) -> None:
        self.stopped += 1


def valid_request(line: str) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
        check_request(message)
    except (ValueError, RecursionError, ProtocolError, UnicodeEncodeError):
        return None
    assert isinstance(message, dict)
    return message


@sizes(700, 6000)
def test_hostile_requests_get_one_error_reply_each_and_serving_goes_on(
    inputs: Inputs, examples: int
) -> None:
    @fuzz_settings(examples)
    @given(lines())
    def one(session: list[str]) -> None:
        callbacks = Callbacks()
        out = io.StringIO()
        began = time.monotonic()
        serve(
            callbacks.program,
            start=callbacks.start,
            stop=callbacks.stop,
            stdin=io.StringIO("".join(session)),
            stdout=out,
        )
        assert time.monotonic() - began < SERVE_LIMIT_S
        replies = [parse_reply(line.encode()) for line in out.getvalue().splitlines()]
        answered = session[: len(replies)]
        shut = False
        for line, reply in zip(answered, replies, strict=True):
            request = valid_request(line)
            seq = request.get("seq") if request else None
            if reply["ok"]:
                assert request is not None, (line[:200], reply)
                shut = request["type"] == "shutdown"
            else:
                assert reply["error"], reply
            if seq is not None:
                assert reply.get("seq") == seq, (line[:200], reply)
        assert len(replies) == len(session) or shut, "a line went unanswered"
        assert callbacks.stopped == 1
        assert len(callbacks.started) <= 1
        inputs.tried("shut down" if shut else "stdin ended")

    one()
    inputs.at_least(examples)


PROXY = textwrap.dedent(
    """
    from harness.proxies.sdk import serve
    serve(lambda ports: None)
    """
)


def test_a_real_proxy_answers_bytes_that_are_not_utf8_and_keeps_serving(
    tmp_path: Path, inputs: Inputs
) -> None:
    script = tmp_path / "proxy.py"
    script.write_text(PROXY)
    hostile = [b"\xff\xfe\n", b"\x00\n", b'{"type": "sync", "seq": 2}\x00\n', b"\xc3\n", b"\n"]
    hostile += [b'{"a": "\xed\xa0\x80"}\n', b"\r\n", b"x" * (MAX_LINE_BYTES + 3) + b"\n"]
    first = json.dumps({**hello(NODE), "seq": 1}).encode() + b"\n"
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},  # strict, as in a UTF-8 locale
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        for line in [first, *hostile * 20]:
            process.stdin.write(line)
            process.stdin.flush()
            reply = parse_reply(process.stdout.readline())
            assert reply["ok"] is (line == first), (line[:80], reply)
            inputs.tried("bytes")
        sync = json.dumps({"type": "sync", "seq": 2}).encode() + b"\n"
        process.stdin.write(sync)
        process.stdin.flush()
        assert parse_reply(process.stdout.readline()) == {"ok": True, "seq": 2}
        process.stdin.close()
        assert process.wait(timeout=SERVE_LIMIT_S) == 0
    finally:
        process.kill()
        process.wait()
    assert process.stderr is not None and b"Traceback" not in process.stderr.read()
    inputs.at_least(len(hostile) * 20)
