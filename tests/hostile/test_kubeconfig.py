"""Kubeconfigs, fuzzed: a usage error in one line, never a traceback, never a connection.

The documents start as valid kubeconfigs (token, basic-auth and client-certificate users, two
clusters, two contexts), written as YAML or as JSON, and are then broken
(`tests.hostile.hostile`): values replaced, keys dropped or added, bytes damaged; the context
asked for is the file's, another of its names, or any string. `harness.kube.api.connect` must
return a connection (for a file that is still a kubeconfig) or raise `UsageError` with one line;
either way without opening a socket or starting a process (both are refused and recorded while
the test runs). End to end, `harness run --target kube --kubeconfig FILE` exits 2 with one line
before anything is made, or, for a usable file, 3 with one line naming the unreachable server
(a connection to the file's server, the only thing a run may attempt, is refused too).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import UsageError
from harness.kube.api import connect
from tests.hostile.conftest import Inputs, fuzz_settings, sizes
from tests.hostile.hostile import broken, damaged, hostile_text

PEM = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
KUBECONFIG: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [
        {"name": "c1", "cluster": {"server": "https://127.0.0.1:9",
                                   "insecure-skip-tls-verify": True}},
        {"name": "c2", "cluster": {"server": "http://127.0.0.1:9",
                                   "certificate-authority-data": PEM}},
    ],
    "users": [
        {"name": "u1", "user": {"token": "abc"}},
        {"name": "u2", "user": {"username": "a", "password": "b"}},
        {"name": "u3", "user": {"client-certificate-data": PEM, "client-key-data": PEM}},
    ],
    "contexts": [
        {"name": "ctx1", "context": {"cluster": "c1", "user": "u1", "namespace": "default"}},
        {"name": "ctx2", "context": {"cluster": "c2", "user": "u3"}},
    ],
    "current-context": "ctx1",
    "preferences": {},
}  # fmt: skip
KEYS = ("server", "token", "user", "cluster", "context", "current-context", "exec")
KEYS += ("auth-provider", "certificate-authority", "client-key", "tokenFile", "proxy-url")
ALIAS_BOMB = "a: &a [x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(20)
)


@st.composite
def kubeconfigs(draw: st.DrawFn) -> bytes:
    document = draw(broken(KUBECONFIG, KEYS)) if draw(st.integers(0, 5)) else KUBECONFIG
    if draw(st.booleans(), label="as JSON"):
        text = json.dumps(document)
    else:
        try:
            text = yaml.safe_dump(document, allow_unicode=True)
        except (yaml.YAMLError, UnicodeEncodeError):
            text = json.dumps(document)
    how = draw(st.sampled_from(["text"] * 4 + ["damaged", "bomb"]))
    if how == "bomb":
        return ALIAS_BOMB.encode()
    if how == "damaged":
        return draw(damaged(text))
    return text.encode("utf-8", "surrogatepass")


CONTEXTS = st.none() | st.sampled_from(["ctx1", "ctx2", "c1", "u1", ""]) | hostile_text(10)


class Sealed:
    """Every socket connection and every process start, refused and recorded."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def refuse(self, what: str) -> None:
        self.attempts.append(what)
        raise ConnectionRefusedError(f"the test refuses {what}")


@pytest.fixture
def sealed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Sealed]:
    seal = Sealed()
    real_connect = socket.socket.connect

    def connect_local_only(sock: socket.socket, address: Any) -> Any:
        if sock.family == socket.AF_UNIX:
            return real_connect(sock, address)
        seal.refuse(f"a connection to {address}")
        return None

    def popen(*args: Any, **kwargs: Any) -> Any:
        seal.refuse(f"starting {args[0] if args else kwargs.get('args')}")

    monkeypatch.setattr(socket.socket, "connect", connect_local_only)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda s, a: seal.refuse(f"{a}"))
    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the client's certificate files
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield seal


@sizes(1000, 6000)
def test_a_broken_kubeconfig_is_one_line_and_contacts_nothing(
    tmp_path: Path, sealed: Sealed, inputs: Inputs, examples: int
) -> None:
    path = tmp_path / "kubeconfig"

    @fuzz_settings(examples)
    @given(kubeconfigs(), CONTEXTS)
    def one(data: bytes, context: str | None) -> None:
        path.write_bytes(data)
        try:
            cluster = connect(str(path), context)
        except UsageError as error:
            assert str(error) and "\n" not in str(error), repr(str(error))
            inputs.tried("refused")
        else:
            cluster.close()
            inputs.tried("accepted")
        assert sealed.attempts == [], sealed.attempts

    one()
    inputs.at_least(examples)


@sizes(150, 1000)
def test_harness_run_on_a_broken_kubeconfig_exits_2_before_anything(
    tmp_path: Path, sealed: Sealed, inputs: Inputs, examples: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection attempt to the file's server is the one thing allowed, and only for a file
    that is a usable kubeconfig (exit 3); the seal refuses it like any other."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "kubeconfig"
    argv = ["run", "--target", "kube", "--kubeconfig", str(path), "--examples", "1"]
    argv += ["--steps", "2", "--failures-dir", "failures"]

    @fuzz_settings(examples)
    @given(kubeconfigs(), CONTEXTS)
    def one(data: bytes, context: str | None) -> None:
        path.write_bytes(data)
        sealed.attempts.clear()
        shutil.rmtree(tmp_path / "failures", ignore_errors=True)
        err = io.StringIO()
        extra = ["--context", context] if context and "\x00" not in context else []
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            code = main([*argv, *extra])
        lines = err.getvalue().splitlines()
        assert code in (2, 3), (code, lines)
        assert "Traceback" not in err.getvalue() and lines[-1].startswith("harness: "), lines
        if code == 2:
            assert len(lines) == 1, lines
            assert sealed.attempts == [] and not (tmp_path / "failures").exists(), lines
        else:  # the run began (its banner) and could not reach the server
            # only connections to the file's server (damage may change its address, e.g.
            # 027.0.0.1, which reads as 23.0.0.1): no program started; the seal refused them all
            assert all(a.startswith("a connection to (") for a in sealed.attempts), sealed.attempts
            assert "cannot reach the Kubernetes API server" in lines[-1], lines
        inputs.tried(f"exit {code}")

    one()
    inputs.at_least(examples)


def test_a_kubeconfig_that_is_not_a_file_or_not_text(tmp_path: Path, sealed: Sealed) -> None:
    (tmp_path / "binary").write_bytes(os.urandom(64) + b"\xff")
    for path, context in [(tmp_path, None), (tmp_path / "binary", None), (tmp_path / "no", "x")]:
        with pytest.raises(UsageError) as raised:
            connect(str(path), context)
        assert str(path) in str(raised.value) and "\n" not in str(raised.value)
    assert sealed.attempts == []
