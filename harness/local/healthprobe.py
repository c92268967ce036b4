"""Asking a healthCheckNodePort from a client namespace, as a cloud load balancer's health check
does: one HTTP/1.1 GET on a fresh connection, bounded in time and size, read to the end.

`ask_health(netns, address, port, request)` runs in a thread of its own that enters `netns`
(so the connection leaves from that client, never from the root namespace) and ends with the
ask; it changes nothing but that one socket, and returns a `HealthCheckReply` for every outcome:
refused, reset, timed out, or an HTTP answer parsed (status, the `X-Content-Type-Options`
header, the JSON body).
"""

from __future__ import annotations

import json
import socket
import time

from harness.local.names import netns_path
from harness.local.netns import in_thread, setns
from harness.traffic import ErrorKind, HealthCheckReply, HealthCheckRequest

REPLY_LIMIT = 65536
PATH = "/healthz"
THREAD_MARGIN_S = 2.0


def ask_health(netns: str, address: str, request: HealthCheckRequest) -> HealthCheckReply:
    """One GET from inside `netns` to `address` on `request.port`, within `request.timeout_s`
    (module docstring)."""
    return in_thread(lambda: _ask(netns, address, request), request.timeout_s + THREAD_MARGIN_S)


def _ask(netns: str, address: str, request: HealthCheckRequest) -> HealthCheckReply:
    setns(netns_path(netns))  # this thread only; it ends with the ask
    deadline = time.monotonic() + request.timeout_s
    try:
        with socket.create_connection((address, request.port), timeout=request.timeout_s) as sock:
            sock.sendall(
                f"GET {PATH} HTTP/1.1\r\nHost: {address}:{request.port}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            data = b""
            while len(data) < REPLY_LIMIT:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(REPLY_LIMIT - len(data))
                if not chunk:
                    break
                data += chunk
    except ConnectionRefusedError:
        return HealthCheckReply(request, None, ErrorKind.REFUSED, detail="connection refused")
    except ConnectionResetError:
        return HealthCheckReply(request, None, ErrorKind.RESET, detail="connection reset")
    except TimeoutError:
        return HealthCheckReply(
            request, None, ErrorKind.TIMEOUT, detail=f"no answer within {request.timeout_s} s"
        )
    except OSError as error:
        return HealthCheckReply(request, None, ErrorKind.OTHER, detail=str(error))
    return parse_reply(request, data)


def parse_reply(request: HealthCheckRequest, data: bytes) -> HealthCheckReply:
    """The reply `data` (a whole HTTP response) stands for; a response without a status line
    is `ErrorKind.OTHER`. Pure."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        shown = lines[0][:80] if data else "nothing"
        return HealthCheckReply(
            request, None, ErrorKind.OTHER, detail=f"not an HTTP response: {shown!r}"
        )
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:])
    }
    nosniff = headers.get("x-content-type-options", "").lower() == "nosniff"
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if not isinstance(parsed, dict):
        return HealthCheckReply(
            request, int(parts[1]), nosniff=nosniff, detail="the body is not a JSON object"
        )
    return HealthCheckReply(request, int(parts[1]), body=parsed, nosniff=nosniff)
