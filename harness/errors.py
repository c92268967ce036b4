"""The harness's exception hierarchy and the exit codes it maps to.

A harness failure must never look like a proxy's violation, so each class carries its own exit code:

- `UsageError` (2): the user asked for something that cannot be done as asked (unknown target, bad
  option value, malformed sequence file). One line, no traceback.
- `Violation` (1): the system under test broke a promise. Raised by the runner, never by the harness
  for its own problems.
- `EnvironmentProblem` (3): the machine cannot run what was asked (no root, a missing binary, an
  unreachable API server). One line, no traceback.
- any other exception is a harness bug and is reported as a harness error (3) with a traceback.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_USAGE = 2
EXIT_HARNESS = 3


class HarnessError(Exception):
    """Base of every error the harness expects; `exit_code` says how the CLI ends."""

    exit_code = EXIT_HARNESS

    def line(self) -> str:
        """The message as one printable line: control characters (a newline a user's value
        carried in) are written as escapes, so the message can never become two lines."""
        return "".join(
            char if char.isprintable() or char == " " else char.encode("unicode_escape").decode()
            for char in str(self)
        )


class UsageError(HarnessError):
    """The request was malformed; the message names the problem and the fix."""

    exit_code = EXIT_USAGE


class EnvironmentProblem(HarnessError):
    """The environment cannot run the request (privileges, binaries, cluster access)."""

    exit_code = EXIT_HARNESS


class InvalidEvent(UsageError):
    """An event does not apply to the model state it was given (for example an unknown pod)."""


class Violation(HarnessError):
    """The target broke a property; `evidence` holds the failing verdicts as plain data."""

    exit_code = EXIT_VIOLATION

    def __init__(self, message: str, evidence: Any = None) -> None:
        super().__init__(message)
        self.evidence = evidence
