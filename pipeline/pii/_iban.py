"""International bank account numbers (IBAN, ISO 13616): country, length and mod-97 checksum.

An IBAN is a country code, two check digits and the national account number (BBAN) in
capitals and digits, compact (``DE89370400440532013000``) or in groups of four
(``GB82 WEST 1234 5698 7654 32``). It counts only when its length is the one registered
for its country and the ISO 7064 mod-97 check gives 1, which a random string does 1 time
in 97 — on top of the exact length.
"""

from __future__ import annotations

import re

from pipeline.pii._model import Match

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
"""Registered IBAN length per country (the IBAN registry)."""

_IBAN_RE = re.compile(
    r"(?<![\w\-])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![\w\-])"
)
_HINT_RE = re.compile(r"[A-Z]{2}[0-9]{2}")


def mod97_ok(iban: str) -> bool:
    """True when the compact IBAN's check digits are right (ISO 7064 mod 97-10)."""
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _span(candidate: str) -> int | None:
    """Characters of ``candidate`` that make up its country's IBAN length, or None."""
    length = IBAN_LENGTHS.get(candidate[:2])
    if length is None:
        return None
    seen = 0
    for i, ch in enumerate(candidate):
        if ch != " ":
            seen += 1
            if seen == length:
                end = i + 1
                return end if end == len(candidate) or candidate[end] == " " else None
    return None


def scan_ibans(masked: str, original: str, lower: str) -> list[Match]:
    """IBANs in ``masked`` (earlier findings hidden; ``lower`` is ``original`` lowercased)."""
    if _HINT_RE.search(masked) is None:
        return []
    found: list[Match] = []
    for m in _IBAN_RE.finditer(masked):
        size = _span(m.group())
        if size is None or not mod97_ok(m.group()[:size].replace(" ", "")):
            continue
        found.append(Match("iban", m.start(), m.start() + size, original[m.start():m.start() + size]))
    return found
