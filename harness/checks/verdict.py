"""Verdicts: what a check says about one observation, with the evidence to show a person."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """`holds` is False when the property was violated; `evidence` is plain JSON-able data."""

    property: str
    holds: bool
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "property": self.property,
            "holds": self.holds,
            "message": self.message,
            "evidence": self.evidence,
        }


def passed(prop: str, message: str = "holds", **evidence: Any) -> Verdict:
    return Verdict(prop, True, message, evidence)


def failed(prop: str, message: str, **evidence: Any) -> Verdict:
    return Verdict(prop, False, message, evidence)
