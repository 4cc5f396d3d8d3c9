"""National identity numbers: US Social Security numbers, UK National Insurance numbers, Spanish DNI/NIE.

- **US SSN** ``AAA-GG-SSSS``: area 001–899 but not 666, group 01–99, serial 0001–9999
  (the Social Security Administration's rules), minus numbers it voided after they were
  printed in ads (``078-05-1120``, ``219-09-9999``, ``457-55-5462``). With a space
  (``AAA GG SSSS``) or none it counts only after ``SSN`` / ``social security``.
- **UK NINO** ``AB 12 34 56 C``: two prefix letters (first not D, F, I, Q, U, V; second
  not D, F, I, O, Q, U, V; not BG, GB, KN, NK, NT, TN, ZZ), six digits, suffix A–D.
- **Spanish DNI** ``12345678Z`` and **NIE** ``X1234567L``: the letter is the number's
  remainder mod 23 looked up in ``TRWAGMYFPDXBNJZSQVHLCKE``.
"""

from __future__ import annotations

import re

from pipeline.pii._model import Match

_SSN_DASHED_RE = re.compile(r"(?<![\w\-./])([0-9]{3})-([0-9]{2})-([0-9]{4})(?![\w@]|[\-./][0-9])")
_SSN_WORDED_RE = re.compile(
    r"(?i:\b(?:ssn|ss#|social[\s\-]+security(?:[\s\-]+(?:number|no\.?))?)\b[\s:#.\-]*(?:is\s+)?)"
    r"([0-9]{3})[ \-]?([0-9]{2})[ \-]?([0-9]{4})(?![\w@]|[\-./][0-9])"
)
_VOIDED_SSNS = frozenset(("078051120", "219099999", "457555462"))
_NINO_RE = re.compile(
    r"(?<![\w\-])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"( ?)[0-9]{2}\1[0-9]{2}\1[0-9]{2}\1[A-D](?![\w\-])"
)
_DNI_RE = re.compile(r"(?<![\w\-])([XYZ]?)([0-9]{7,8})-?([A-Z])(?![\w\-])")
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_SSN_HINT_RE = re.compile(r"-[0-9]{2}-[0-9]{4}")  # literal-led searches: fast on long text
_LETTER_HINT_RE = re.compile(r"[0-9][ \-]?[A-Z](?![\w\-])")  # NINO, DNI and NIE end so


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """True when the three parts follow the SSA's rules for an issuable number."""
    a = int(area)
    return (0 < a < 900 and a != 666 and group != "00" and serial != "0000"
            and area + group + serial not in _VOIDED_SSNS)


def dni_ok(prefix: str, number: str, letter: str) -> bool:
    """True when a DNI (8 digits) or NIE (X/Y/Z and 7 digits) ends in its check letter."""
    if (prefix and len(number) != 7) or (not prefix and len(number) != 8):
        return False
    value = int(str("XYZ".index(prefix)) + number) if prefix else int(number)
    return _DNI_LETTERS[value % 23] == letter


def scan_national_ids(masked: str, original: str, lower: str) -> list[Match]:
    """National ids in ``masked`` (earlier findings hidden; ``lower`` is ``original`` lowercased)."""
    spans: list[tuple[int, int]] = []
    if "ssn" in lower or "social" in lower or "ss#" in lower:
        spans += [(m.start(1), m.end()) for m in _SSN_WORDED_RE.finditer(masked) if ssn_ok(*m.groups())]
    if _SSN_HINT_RE.search(masked):
        spans += [m.span() for m in _SSN_DASHED_RE.finditer(masked) if ssn_ok(*m.groups())]
    if _LETTER_HINT_RE.search(masked):
        spans += [m.span() for m in _NINO_RE.finditer(masked)]
        spans += [m.span() for m in _DNI_RE.finditer(masked) if dni_ok(*m.groups())]
    found: list[Match] = []
    for s, e in sorted(set(spans)):
        if found and s < found[-1].end:
            continue
        found.append(Match("national_id", s, e, original[s:e]))
    return found
