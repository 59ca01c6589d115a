"""How severe a vulnerability is: the CVSS base score an OSV record's vector gives
(computed with the `cvss` library, newest CVSS version the record has), else the Debian
tracker's urgency for the device's release.

Levels, highest first: critical (CVSS >= 9), high (>= 7), medium (>= 4), low (> 0),
unimportant (the tracker's word), unknown (no score, urgency "not yet assigned").
"""

from __future__ import annotations

from dataclasses import dataclass

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError

LEVELS = ("critical", "high", "medium", "low", "unimportant", "unknown")
_URGENCY = {"high": "high", "medium": "medium", "low": "low", "unimportant": "unimportant"}
_CALCULATORS = (("CVSS_V4", CVSS4), ("CVSS_V3", CVSS3), ("CVSS_V2", CVSS2))


@dataclass(frozen=True)
class Severity:
    level: str
    score: float | None = None
    source: str = ""
    """"CVSS_V3 CVSS:3.1/AV:N/…", or "urgency medium"."""

    @property
    def rank(self) -> int:
        return LEVELS.index(self.level)

    def label(self) -> str:
        return f"{self.level} {self.score:.1f}" if self.score is not None else self.level


def level_of_score(score: float) -> str:
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else "unknown"


def cvss_severity(vectors: tuple[tuple[str, str], ...]) -> Severity | None:
    """The newest CVSS version's base score among (type, vector) pairs; unparseable
    vectors are skipped (the schema only says they are strings)."""
    for kind, calculator in _CALCULATORS:
        scores = []
        for found_kind, vector in vectors:
            if found_kind != kind:
                continue
            try:
                scores.append((float(calculator(vector).base_score), vector))
            except (CVSSError, ValueError, KeyError, IndexError):
                continue
        if scores:
            score, vector = max(scores)
            return Severity(level_of_score(score), score, f"{kind} {vector}")
    return None


def urgency_severity(urgency: str) -> Severity:
    word = urgency.rstrip("*").strip().lower()
    return Severity(_URGENCY.get(word, "unknown"), None, f"urgency {urgency or 'none'}")


def at_least(severity: Severity, minimum: str) -> bool:
    return severity.rank <= LEVELS.index(minimum)
