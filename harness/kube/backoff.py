"""When an API call that failed is worth trying again, and after how long. Pure: no I/O, no clock.

An API server under load answers 429 Too Many Requests (API Priority and Fairness, or
`--max-requests-inflight`) with a `Retry-After` header, and a server that is restarting or behind
a load balancer answers 500, 502, 503 or 504, or drops the connection. client-go retries exactly
these (`rest.Request.retry`, `IsRetryableError` and `checkWait`: 429 and 5xx with Retry-After,
connection resets) and so does the harness, with one policy (`Backoff`):

- a stated `Retry-After` (seconds or an HTTP date, RFC 9110 §10.2.3) is waited for, capped at
  `max_retry_after_s` so a hostile header cannot stall a run;
- otherwise the wait grows exponentially from `first_s` by `factor` up to `cap_s`, with up to
  `jitter` of it drawn at random so that many writers refused at once do not return at once;
- after `attempts` tries the failure is reported, as one line (`harness.kube.api`).

What is never retried: any other status (a 4xx says the request itself is wrong), and a
connection that could not be opened at all (refused, DNS, TLS: an unreachable server must fail in
seconds). Retrying a create whose answer was lost (a reset or a 504 after the server stored it)
can meet 409 AlreadyExists; that is reported as the API's refusal, not hidden.
"""

from __future__ import annotations

import datetime
import email.utils
import http.client
from collections.abc import Mapping
from dataclasses import dataclass

import urllib3
from kubernetes.client.exceptions import ApiException

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
RESET_ERRORS = (
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    http.client.RemoteDisconnected,
    urllib3.exceptions.ProtocolError,
)
"""A connection that was open and then dropped (a server restart, a proxy timing out)."""


@dataclass(frozen=True)
class Backoff:
    """How often and how long to retry a call that failed for a reason that may pass.

    The waits without Retry-After are `first_s * factor**(n-1)` for retry n, capped at `cap_s`,
    each lengthened by up to `jitter` of itself; with the defaults a persistent failure is
    reported after 6 attempts and about 8 s.
    """

    attempts: int = 6
    first_s: float = 0.25
    factor: float = 2.0
    cap_s: float = 8.0
    max_retry_after_s: float = 60.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_s < 0 or self.factor < 1 or self.cap_s < 0:
            raise ValueError(f"not a usable backoff: {self}")

    def delay(self, retry: int, retry_after_s: float | None = None, draw: float = 0.0) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry).

        `retry_after_s` is the server's Retry-After, used as stated (capped at
        `max_retry_after_s`, never jittered: the server said when); `draw` is a number in [0, 1)
        that picks the jitter. Never negative.
        """
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_retry_after_s)
        base = min(self.first_s * self.factor ** max(retry - 1, 0), self.cap_s)
        return base * (1.0 + self.jitter * min(max(draw, 0.0), 1.0))


def retryable(error: BaseException) -> bool:
    """Whether `error` (an ApiException or a transport error) may pass if the call is repeated:
    a status in RETRYABLE_STATUSES, or a connection reset anywhere in the error's causes (urllib3
    wraps it in MaxRetryError and ProtocolError). A refused or unresolvable connection is not."""
    if isinstance(error, ApiException):
        return error.status in RETRYABLE_STATUSES
    return any(isinstance(cause, RESET_ERRORS) for cause in _causes(error))


def retry_after_s(error: BaseException, now: datetime.datetime | None = None) -> float | None:
    """The wait the server asked for in `Retry-After`, in seconds, or None when it gave none or
    an unreadable one. An HTTP date is measured from `now` (default: the current UTC time)."""
    headers = getattr(error, "headers", None)
    if not isinstance(error, ApiException) or not isinstance(headers, Mapping):
        return None
    value = headers.get("Retry-After")
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    now = now or datetime.datetime.now(datetime.UTC)
    return max((when - now).total_seconds(), 0.0)


def describe(error: BaseException) -> str:
    """A short name of a retryable failure for the final error line: `503 Service Unavailable`,
    `429 Too Many Requests`, or `connection reset`."""
    if isinstance(error, ApiException):
        return f"{error.status} {error.reason or ''}".strip()
    return "connection reset"


def _causes(error: BaseException) -> list[BaseException]:
    """`error` and every error it wraps (`reason`, `__cause__`, `__context__`, the arguments of
    urllib3's ProtocolError), each once."""
    seen: list[BaseException] = []
    queue: list[BaseException] = [error]
    while queue:
        current = queue.pop()
        if any(current is known for known in seen):
            continue
        seen.append(current)
        inner = [getattr(current, "reason", None), current.__cause__, current.__context__]
        inner.extend(current.args)
        queue.extend(item for item in inner if isinstance(item, BaseException))
    return seen
