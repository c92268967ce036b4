"""Hostile inputs for the fuzz tests: values, JSON documents, mutations of valid documents, bytes.

A hostile input is built the way an attacker or an unlucky editor would: start from a valid
document (one the harness itself writes) and break it in one to three places, or damage its
bytes. Hypothesis draws the damage, so every failure shrinks to the smallest breakage.

Everything here is pure: strategies in, values out; nothing reads or writes a file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from hypothesis import strategies as st

Json = Any
Path = tuple[str | int, ...]

EDGE_INTS = (0, -1, 1, 2**31, 2**31 - 1, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**30)
EDGE_INTS += (10**300, 10**400)  # a float holds the first, not the second
EDGE_FLOATS = (0.0, -0.0, 1e-300, 1e308, -1e308, float("inf"), float("-inf"), float("nan"))
EDGE_TEXT = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\n",
    "a\nb",
    "\r\n",
    "\t",
    "\ud800",  # a lone surrogate: not encodable as UTF-8
    "\udcff",  # how os.fsdecode spells the byte 0xff
    "\ufeff",
    "\u202e",  # right-to-left override
    "é",
    "名前",
    "🙂",
    "-",
    "--",
    "--target",
    "--help",
    "-h",
    "{kubeconfig}",
    "{0}",
    "%s%n",
    "$(reboot)",
    "`id`",
    "'; rm -rf /",
    '" -j ACCEPT -m comment --comment "',
    "..",
    ".",
    "<script>alert(1)</script>",
    "a" * 64,
    "a" * 254,
    "x" * 5000,
    "null",
    "true",
    "NaN",
    "1e999",
    "0x10",
    "  7  ",
)


@cache
def hostile_ints() -> st.SearchStrategy[int]:
    return st.sampled_from(EDGE_INTS) | st.integers()


@cache
def hostile_floats() -> st.SearchStrategy[float]:
    return st.sampled_from(EDGE_FLOATS) | st.floats()


@cache
def hostile_text(max_size: int = 12) -> st.SearchStrategy[str]:
    """Strings an input may carry: edge cases, and any text (control characters, surrogates,
    every plane) of modest length."""
    anything = st.text(st.characters(exclude_categories=()), max_size=max_size)
    return st.sampled_from(EDGE_TEXT) | anything


@cache
def hostile_scalars() -> st.SearchStrategy[Json]:
    return st.one_of(st.none(), st.booleans(), hostile_ints(), hostile_floats(), hostile_text())


@cache
def hostile_json(max_leaves: int = 8) -> st.SearchStrategy[Json]:
    """Any JSON-shaped value (NaN and infinities included, which Python's json writes)."""
    return st.recursive(
        hostile_scalars(),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(hostile_text(6), inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


# -- breaking a valid document --------------------------------------------------------------------
def paths_of(document: Json, prefix: Path = ()) -> list[Path]:
    """Every path to a value inside `document` (the root is `()`)."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths_of(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths_of(value, (*prefix, index))
    return found


def _get(document: Json, path: Path) -> Json:
    for step in path:
        document = document[step]
    return document


def _replaced(document: Json, path: Path, change: Callable[[Json], Json]) -> Json:
    """A copy of `document` with the value at `path` replaced by `change(value)`."""
    if not path:
        return change(document)
    head, rest = path[0], path[1:]
    if isinstance(document, dict):
        copy = dict(document)
        copy[head] = _replaced(document[head], rest, change)
        return copy
    copy_list = list(document)
    assert isinstance(head, int)
    copy_list[head] = _replaced(document[head], rest, change)
    return copy_list


_DELETE = object()


def _without_nones(value: Json) -> Json:
    """`value` with every `_DELETE` marker removed from its containers."""
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not _DELETE}
    if isinstance(value, list):
        return [_without_nones(v) for v in value if v is not _DELETE]
    return value


@st.composite
def broken(
    draw: st.DrawFn, document: Json, extra_keys: tuple[str, ...] = (), max_changes: int = 3
) -> Json:
    """`document` broken in one to `max_changes` places: a value replaced by a hostile one (or
    by another value of the document, a type confusion that keeps the shape), a key deleted,
    a key added (`extra_keys` names plausible ones), a list emptied, doubled or truncated."""
    for _ in range(draw(st.integers(1, max_changes))):
        paths = paths_of(document)
        path = draw(st.sampled_from(paths), label="where")
        current = _get(document, path)
        kind = draw(
            st.sampled_from(["replace", "replace", "delete", "add", "swap", "list"]),
            label="how",
        )
        if kind == "replace":
            value = draw(hostile_json(), label="value")
            document = _replaced(document, path, lambda _old, v=value: v)
        elif kind == "swap":
            other = _get(document, draw(st.sampled_from(paths), label="from"))
            document = _replaced(document, path, lambda _old, v=other: v)
        elif kind == "delete" and path:
            document = _without_nones(_replaced(document, path, lambda _old: _DELETE))
        elif kind == "add" and isinstance(current, dict):
            key = draw(st.sampled_from(extra_keys) | hostile_text(8), label="key")
            value = draw(hostile_json(4), label="value")
            document = _replaced(document, path, lambda old, k=key, v=value: {**old, k: v})
        elif kind == "list" and isinstance(current, list):
            how = draw(st.sampled_from(["empty", "double", "truncate", "reverse"]))
            changed = {
                "empty": [],
                "double": current + current,
                "truncate": current[: len(current) // 2],
                "reverse": current[::-1],
            }[how]
            document = _replaced(document, path, lambda _old, v=changed: v)
    return document


# -- damaging bytes -------------------------------------------------------------------------------
DEEP = "[" * 100_000
HUGE_NUMBER = "1" * 5000  # longer than Python's int-from-string limit (4300 digits)


@st.composite
def damaged(draw: st.DrawFn, text: str) -> bytes:
    """The bytes of `text`, damaged: cut short, a byte changed or inserted (NUL, invalid UTF-8),
    a byte-order mark, another encoding, a huge number or a deep nesting spliced in."""
    data = text.encode("utf-8", "surrogatepass")
    kind = draw(
        st.sampled_from(
            ["cut", "flip", "insert", "bom", "utf16", "splice", "empty", "binary", "latin1"]
        ),
        label="damage",
    )
    at = draw(st.integers(0, len(data)), label="at")
    if kind == "cut":
        return data[:at]
    if kind == "flip" and data:
        index = min(at, len(data) - 1)
        return data[:index] + bytes([draw(st.integers(0, 255))]) + data[index + 1 :]
    if kind == "insert":
        chunk = draw(st.sampled_from([b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\n", b"}"]))
        return data[:at] + chunk + data[at:]
    if kind == "bom":
        return b"\xef\xbb\xbf" + data
    if kind == "utf16":
        return text.encode("utf-16", "surrogatepass")
    if kind == "splice":
        chunk = draw(st.sampled_from([DEEP, HUGE_NUMBER, "NaN", "-Infinity", '"\\ud800"']))
        return data[:at] + chunk.encode() + data[at:]
    if kind == "empty":
        return b""
    if kind == "binary":
        return draw(st.binary(max_size=64))
    return text.encode("latin-1", "replace")


def dumps(document: Json) -> str:
    """`document` as JSON text the way Python writes it (NaN and infinities as bare words)."""
    return json.dumps(document, indent=1)
