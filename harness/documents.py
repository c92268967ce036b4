"""Reading the harness's JSON files back: every way a file can be bad, said in one line.

Every file the harness writes (sequences, failures, results, figures, manifests) is one JSON
object naming its format and version in `schema` (`harness.KIND/vN`). Reading one back must never
end in a traceback, whatever the file holds: `read_document` returns the object or raises
`BadDocument` (a ValueError) whose text is one short line saying what is wrong, for a file that
is too large, not UTF-8, not JSON, nested too deeply, holding a number Python will not parse or
a non-finite one (NaN and Infinity are not JSON, though Python writes them), holding a string
that cannot be written back as UTF-8 (an unpaired surrogate escape), or not an object.
`check_schema` refuses a version this harness does not read, naming the version read and those
understood. Callers turn `BadDocument` into their own error (a usage error for a file the user
named, a "malformed" note in a report); OSError (the file cannot be read) is left to them.

Pure apart from reading the one file; never writes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
"""Larger files are refused before they are read (a failure file with a long history is a few
megabytes)."""


class BadDocument(ValueError):
    """A file that is not a usable document; the text is one line naming the problem."""


def _no_constant(word: str) -> Any:
    raise BadDocument(f"holds {word}, which is not a JSON number (write a finite number)")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise BadDocument(f"holds the number {shorten(text)}, too large for a float")
    return number


def parse_document(text: str) -> dict[str, Any]:
    """The JSON object in `text`; BadDocument (one line) for anything else."""
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except BadDocument:
        raise
    except json.JSONDecodeError as error:
        raise BadDocument(
            f"not valid JSON ({error.msg}: line {error.lineno} column {error.colno})"
        ) from None
    except RecursionError:
        raise BadDocument("nested too deeply to be one of the harness's files") from None
    except ValueError as error:  # a number longer than Python's int-from-string limit
        reason = str(error).split(";")[0].strip() or type(error).__name__
        raise BadDocument(f"holds a number it cannot read ({reason})") from None
    if not isinstance(data, dict):
        raise BadDocument(f"holds a JSON {_json_type(data)}, not an object")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadDocument(
            "holds a string that is not Unicode text (an unpaired surrogate escape, \\udXXX)"
        ) from None
    return data


def read_document(path: Path, max_bytes: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """The JSON object in the file at `path` (see the module docstring). Raises BadDocument,
    or OSError when the file cannot be read at all."""
    size = path.stat().st_size
    if size > max_bytes:
        raise BadDocument(f"is {size:,} bytes, more than the {max_bytes:,} a document may have")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadDocument(f"is not UTF-8 text (byte {error.start}: {error.reason})") from None
    return parse_document(text)


def check_schema(
    document: Mapping[str, Any], readable: Sequence[str], field: str = "schema"
) -> str:
    """The document's schema if it is one of `readable`; BadDocument naming the schema read and
    the ones understood otherwise."""
    schema = document.get(field)
    if schema in readable:
        assert isinstance(schema, str)
        return schema
    read = "no schema" if schema is None else f"schema {shorten(schema)}"
    raise BadDocument(f"has {read}; this harness reads {' and '.join(readable)}")


def shorten(value: object, limit: int = 60) -> str:
    """`repr(value)`, cut to about `limit` characters: a value quoted in a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
