"""Output files: checked before a run starts, written whole or not at all.

What a run finds must never be lost to a bad path, so every output the user names is checked
before anything starts (`check_output_file`, `prepare_output_dir`), and every file is written to
a temporary name in its own directory and renamed into place (`write_atomically`): a reader sees
the old file or the new one, never half of one, and a failed write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from harness.errors import UsageError


def _writable_directory(directory: Path, option: str, fix: str) -> None:
    if not directory.is_dir():
        raise UsageError(f"{option}: directory {directory} does not exist; {fix}")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".harness-probe-"):
            pass
    except OSError as error:
        raise UsageError(
            f"{option}: cannot write in {directory} ({error.strerror}); choose another path"
        ) from None


TEMPORARY_EXTRA = 10
"""How much longer the temporary name `write_atomically` uses is than the file's own."""


def check_output_file(path: Path, option: str) -> None:
    """UsageError (one line) unless a file can be written at `path`: its directory exists and is
    writable, `path` is not a directory, and its name (and its temporary name) fits the file
    system. Creates nothing."""
    try:
        if path.is_dir():
            raise UsageError(f"{option}: {path} is a directory; give a file name")
        directory = path.parent if str(path.parent) else Path(".")
        _writable_directory(directory, option, "create it first or choose another path")
        name_max = os.pathconf(directory, "PC_NAME_MAX")
    except OSError as error:  # a path longer than the system allows, say
        raise UsageError(f"{option}: cannot use {path} ({error.strerror})") from None
    if len(os.fsencode(path.name)) + TEMPORARY_EXTRA > name_max:
        raise UsageError(
            f"{option}: the file name is longer than this file system allows"
            f" ({name_max - TEMPORARY_EXTRA} bytes); choose a shorter one"
        )


def prepare_output_dir(directory: Path, option: str) -> None:
    """Make sure `directory` exists and is writable: it is created if its parent exists (the
    parent is never created); UsageError (one line) otherwise."""
    try:
        exists = directory.exists()
    except OSError as error:  # a path longer than the system allows, say
        raise UsageError(f"{option}: cannot use {directory} ({error.strerror})") from None
    if not exists:
        parent = directory.parent if str(directory.parent) else Path(".")
        _writable_directory(parent, option, "create it first or choose another path")
        try:
            directory.mkdir()
        except OSError as error:
            raise UsageError(f"{option}: cannot create {directory} ({error.strerror})") from None
    _writable_directory(directory, option, "choose another path")


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory and a rename; on
    any error the temporary file is removed and the error raised (OSError)."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", text=True)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
