"""How a proxy under test fails: `ProxyFailure`, a violation by the proxy, never a harness error.

A proxy that crashes, hangs past its timeout, answers garbage or cannot apply a configuration
broke its contract (harness.proxies.base.Proxy), so the run reports it like any other broken
promise: exit code 1, with the proxy's own words (its stderr or log tail) as evidence.
"""

from __future__ import annotations

from harness.errors import Violation

TAIL_CHARS = 2000
PROBLEM_CHARS = 1000  # room for the offending message, the reason and the fix


def one_line(text: str, limit: int = PROBLEM_CHARS) -> str:
    """`text` with every run of whitespace (newlines too) as one space, cut to `limit` chars."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def last_line(text: str) -> str:
    """The last non-empty line of `text`, for one-line messages."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


class ProxyFailure(Violation):
    """The proxy crashed, hung, answered garbage or refused its configuration.

    `str(error)` is one line naming the proxy, what it was asked and what went wrong, ending with
    the last line of its stderr; `stderr_tail` (also in `evidence`) holds up to the last
    `TAIL_CHARS` characters of its stderr or log.
    """

    def __init__(self, proxy: str, problem: str, stderr_tail: str = "") -> None:
        self.proxy = proxy
        self.problem = one_line(problem)
        self.stderr_tail = stderr_tail[-TAIL_CHARS:]
        last = one_line(last_line(self.stderr_tail), 200)
        message = f"proxy {proxy!r} {self.problem}" + (f"; stderr ends: {last}" if last else "")
        super().__init__(
            message,
            evidence={"proxy": proxy, "problem": self.problem, "stderr_tail": self.stderr_tail},
        )
