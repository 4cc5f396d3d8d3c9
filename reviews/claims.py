"""Figures an agent claims about tests, parsed and compared with what coord measured.

Agents write "21 tests, 18 passing", "all 42 tests pass" or "100% pass rate" in
their notes; coord never takes those at their word. :func:`parse_claims` finds
such figures and :func:`compare` sets each next to the counts a command check
measured, so a review shows claim and measurement side by side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from coordinator.core.state import ClaimComparison

_PASS = r"(?:pass(?:es|ed|ing)?|succeed(?:s|ed)?|green)"
_NUM = r"(\d[\d,]*)"


@dataclass(frozen=True)
class Claim:
    """One claimed figure; fields the claim does not state are None."""

    text: str
    passed: int | None = None
    failed: int | None = None
    total: int | None = None
    rate: float | None = None
    """Pass rate in [0, 1]."""

    def describe(self) -> str:
        """Normal form, e.g. ``18/21 passed``, ``100% pass rate``."""
        parts = []
        if self.passed is not None and self.total is not None:
            parts.append(f"{self.passed}/{self.total} passed")
        elif self.passed is not None:
            parts.append(f"{self.passed} passed")
        elif self.total is not None:
            parts.append(f"{self.total} tests")
        if self.failed is not None:
            parts.append(f"{self.failed} failed")
        if self.rate is not None:
            parts.append(f"{self.rate * 100:g}% pass rate")
        return ", ".join(parts)


@dataclass(frozen=True)
class Measured:
    """Counts a command check measured (None when its output had none) and its exit code."""

    passed: int | None
    failed: int | None
    errors: int | None
    exit_code: int | None

    @property
    def total(self) -> int | None:
        if self.passed is None and self.failed is None and self.errors is None:
            return None
        return (self.passed or 0) + (self.failed or 0) + (self.errors or 0)

    @property
    def rate(self) -> float | None:
        total = self.total
        if total:
            return (self.passed or 0) / total
        return None

    def describe(self) -> str:
        """What was measured, in the same form as :meth:`Claim.describe`."""
        if self.total is None:
            return f"exit {self.exit_code} (no pass/fail counts in the output)"
        text = f"{self.passed or 0}/{self.total} passed"
        if self.failed:
            text += f", {self.failed} failed"
        if self.errors:
            text += f", {self.errors} errors"
        rate = self.rate
        return text + (f" ({rate * 100:.1f}% pass rate)" if rate is not None else "")


def _int(s: str) -> int:
    return int(s.replace(",", ""))


# Each pattern turns a match into a Claim; earlier patterns win on overlapping text.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"{_NUM} passed(?:,\s*{_NUM} failed)?(?:,\s*{_NUM} errors?)?", re.I), "pytest"),
    (re.compile(rf"all {_NUM} (?:unit |integration )?tests? (?:are )?{_PASS}", re.I), "all_n"),
    (re.compile(rf"{_NUM}\s*/\s*{_NUM} (?:tests? )?(?:are )?{_PASS}", re.I), "slash"),
    (re.compile(rf"{_NUM} (?:out )?of {_NUM} (?:tests? )?(?:are )?{_PASS}", re.I), "of"),
    (re.compile(rf"{_NUM} tests?(?: \w+)?[,:;]\s*{_NUM} (?:are )?{_PASS}", re.I), "n_tests_m_pass"),
    (re.compile(r"(\d+(?:\.\d+)?)\s*%\s*(?:test )?(?:pass(?:ing)?(?: rate)?|success(?: rate)?|of (?:the )?tests? pass)", re.I), "rate"),
    (re.compile(r"pass(?:ing)? rate(?: of| is|:|=)?\s*(\d+(?:\.\d+)?)\s*%", re.I), "rate"),
    (re.compile(rf"all (?:the )?tests? (?:are )?{_PASS}", re.I), "all"),
]


def parse_claims(text: str) -> list[Claim]:
    """Every test figure claimed in ``text``, in order of appearance."""
    found: list[tuple[int, int, Claim]] = []
    for n, line in enumerate(text.splitlines()):
        taken: list[tuple[int, int]] = []
        for pattern, kind in _PATTERNS:
            for m in pattern.finditer(line):
                if any(m.start() < end and start < m.end() for start, end in taken):
                    continue
                taken.append((m.start(), m.end()))
                claim = _claim(kind, m)
                if claim is not None:
                    found.append((n, m.start(), claim))
    return [c for _, _, c in sorted(found, key=lambda x: (x[0], x[1]))]


def _claim(kind: str, m: re.Match[str]) -> Claim | None:
    text = m.group(0).strip()
    g = m.groups()
    if kind == "pytest":
        return Claim(text, passed=_int(g[0]), failed=_int(g[1]) if g[1] else None,
                     total=_int(g[0]) + (_int(g[1]) if g[1] else 0) + (_int(g[2]) if g[2] else 0)
                     if g[1] or g[2] else None)
    if kind == "all_n":
        n = _int(g[0])
        return Claim(text, passed=n, total=n, failed=0)
    if kind in ("slash", "of"):
        return Claim(text, passed=_int(g[0]), total=_int(g[1]))
    if kind == "n_tests_m_pass":
        return Claim(text, passed=_int(g[1]), total=_int(g[0]))
    if kind == "rate":
        return Claim(text, rate=float(g[0]) / 100.0)
    if kind == "all":
        return Claim(text, rate=1.0)
    return None


def compare(claims: list[Claim], measured: Measured) -> list[ClaimComparison]:
    """Each claim next to the measurement; ``matches`` is False when any stated figure differs."""
    out: list[ClaimComparison] = []
    for c in claims:
        out.append(ClaimComparison(text=c.text[:200], claimed=c.describe(), measured=measured.describe(),
                                   matches=_matches(c, measured)))
    return out


def _matches(c: Claim, m: Measured) -> bool:
    if m.total is None:
        # Only the exit code is known: a claim of a full pass needs exit 0.
        full = (c.rate is not None and c.rate >= 1.0) or (c.passed is not None and c.passed == c.total) \
            or (c.failed == 0)
        return m.exit_code == 0 if full else True
    if c.passed is not None and c.passed != (m.passed or 0):
        return False
    if c.failed is not None and c.failed != (m.failed or 0) + (m.errors or 0):
        return False
    if c.total is not None and c.total != m.total:
        return False
    rate = m.rate
    return not (c.rate is not None and rate is not None and abs(c.rate - rate) > 0.005)
