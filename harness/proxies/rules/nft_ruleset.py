"""Parsing `nft -j list ruleset` (libnftables' JSON schema) into tables, chains, rules and sets.

Only structure is kept here: each rule stays a list of JSON statements for `nft_trace` to
evaluate. Set and map elements are normalised: an element written with a comment
(`{"elem": {"val": ..., "comment": ...}}`) becomes its value, concatenations become tuples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from harness.proxies.rules.tracing import UntraceableRules

JsonValue = Any  # libnftables JSON: str, int, list or dict, nested


@dataclass
class Chain:
    """A chain; base chains have a hook, a type ("filter", "nat"), a priority and a policy."""

    name: str
    hook: str | None = None
    type: str | None = None
    priority: int = 0
    policy: str = "accept"
    rules: list[list[JsonValue]] = field(default_factory=list)


@dataclass
class NamedSet:
    """A named set or map with its elements (value None for a plain set)."""

    name: str
    elements: list[tuple[JsonValue, JsonValue]] = field(default_factory=list)
    flags: tuple[str, ...] = ()
    timeout_s: int | None = None


@dataclass
class TableContents:
    family: str
    name: str
    chains: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, NamedSet] = field(default_factory=dict)


def parse_nft_json(text: str) -> dict[tuple[str, str], TableContents]:
    """Every table of the ruleset, keyed by (family, name)."""
    try:
        items = json.loads(text)["nftables"]
    except (ValueError, KeyError) as error:
        raise UntraceableRules(f"nft -j output is not understood: {error}") from None
    tables: dict[tuple[str, str], TableContents] = {}

    def table_of(body: dict[str, Any]) -> TableContents:
        key = (body["family"], body["table"])
        return tables.setdefault(key, TableContents(*key))

    for item in items:
        kind, body = next(iter(item.items()))
        if kind == "table":
            key = (body["family"], body["name"])
            tables.setdefault(key, TableContents(*key))
        elif kind == "chain":
            chain = table_of(body).chains.setdefault(body["name"], Chain(body["name"]))
            chain.hook, chain.type = body.get("hook"), body.get("type")
            chain.priority, chain.policy = int(body.get("prio", 0)), body.get("policy", "accept")
        elif kind == "rule":
            table = table_of(body)
            chain = table.chains.setdefault(body["chain"], Chain(body["chain"]))
            chain.rules.append(body["expr"])
        elif kind in ("set", "map"):
            table_of(body).sets[body["name"]] = NamedSet(
                body["name"],
                [element_pair(element, kind == "map") for element in body.get("elem", [])],
                tuple(body.get("flags", ())),
                body.get("timeout"),
            )
    return tables


def element_pair(element: JsonValue, is_map: bool) -> tuple[JsonValue, JsonValue]:
    """(key, value) of one set or map element."""
    if is_map:
        key, value = element
        return normalise(key), value
    return normalise(element), None


def normalise(value: JsonValue) -> JsonValue:
    """Strip element wrappers and turn concatenations into tuples."""
    if isinstance(value, dict):
        if "elem" in value:
            return normalise(value["elem"]["val"])
        if "concat" in value:
            return tuple(normalise(part) for part in value["concat"])
    return value
