"""Parsing `iptables-save` output into tables, chains and rules.

The format is iptables-restore's: `*table`, `:CHAIN POLICY [packets:bytes]`, `-A CHAIN options`,
`COMMIT`. A rule's options are kept as written: basic matches (`-s`, `-d`, `-p`, ...), the options
of each `-m module`, and the target (`-j`/`-g`) with its options. A `!` before an option negates
it. Only parsing happens here; `iptables_trace` gives the options their meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.proxies.rules.tracing import UntraceableRules

BASIC_OPTIONS = {
    "-s": "-s",
    "--source": "-s",
    "-d": "-d",
    "--destination": "-d",
    "-p": "-p",
    "--protocol": "-p",
    "-i": "-i",
    "--in-interface": "-i",
    "-o": "-o",
    "--out-interface": "-o",
}
SINGLE_VALUE_OPTIONS = {"--comment"}  # may hold text that looks like an option
TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')
ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Option:
    """One option as written: whether `!` preceded it, and its values."""

    negated: bool
    values: tuple[str, ...]

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""


@dataclass
class Module:
    """A `-m NAME` match and its options."""

    name: str
    options: dict[str, Option] = field(default_factory=dict)


@dataclass
class Rule:
    """One `-A` line."""

    chain: str
    text: str
    basics: dict[str, Option] = field(default_factory=dict)
    modules: list[Module] = field(default_factory=list)
    target: str = ""
    goto: bool = False
    target_options: dict[str, Option] = field(default_factory=dict)


@dataclass
class Table:
    """One `*table` section: built-in chain policies and every chain's rules in order."""

    name: str
    policies: dict[str, str] = field(default_factory=dict)
    chains: dict[str, list[Rule]] = field(default_factory=dict)


def parse_iptables_save(text: str) -> dict[str, Table]:
    """Every table in an `iptables-save` dump, by name."""
    tables: dict[str, Table] = {}
    table: Table | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = tables.setdefault(line[1:], Table(line[1:]))
        elif table is None:
            raise UntraceableRules(f"iptables-save line {number} precedes any table: {line}")
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            table.chains.setdefault(name, [])
            if policy != "-":
                table.policies[name] = policy
        elif line.startswith("-A "):
            rule = parse_rule(line)
            table.chains.setdefault(rule.chain, []).append(rule)
        else:
            raise UntraceableRules(f"iptables-save line {number} is not understood: {line}")
    return tables


def parse_rule(line: str) -> Rule:
    """One `-A CHAIN ...` line, options grouped by the module or target they follow."""
    tokens = tokenize(line)
    rule = Rule(chain=tokens[1], text=line)
    negated = False
    module: Module | None = None
    in_target = False
    index = 2
    while index < len(tokens):
        token = tokens[index]
        if token == "!":
            negated = True
            index += 1
            continue
        if token in BASIC_OPTIONS:
            rule.basics[BASIC_OPTIONS[token]] = Option(negated, (tokens[index + 1],))
            index += 2
        elif token == "-m":
            module = Module(tokens[index + 1])
            rule.modules.append(module)
            index += 2
        elif token in ("-j", "-g"):
            rule.target, rule.goto, in_target = tokens[index + 1], token == "-g", True
            index += 2
        elif token.startswith("--"):
            values, index = _values(tokens, index)
            if in_target:
                rule.target_options[token] = Option(negated, values)
            elif module is not None:
                module.options[token] = Option(negated, values)
            else:
                raise UntraceableRules(f"option {token} outside any module in: {line}")
        else:
            raise UntraceableRules(f"unexpected {token!r} in: {line}")
        negated = False
    return rule


def tokenize(line: str) -> list[str]:
    """Split a rule line as iptables-save quotes it: words, and double-quoted text with
    backslash escapes (comments). Much faster than `shlex.split` on dumps of 10^4+ rules."""
    return [
        ESCAPE.sub(r"\1", quoted) if quoted or not word else word
        for quoted, word in TOKEN.findall(line)
    ]


def _values(tokens: list[str], index: int) -> tuple[tuple[str, ...], int]:
    """The values following the option at `index`, and the index after them."""
    option = tokens[index]
    index += 1
    if option in SINGLE_VALUE_OPTIONS:
        return (tokens[index],), index + 1
    values = []
    while index < len(tokens) and tokens[index] != "!" and not tokens[index].startswith("-"):
        values.append(tokens[index])
        index += 1
    return tuple(values), index
