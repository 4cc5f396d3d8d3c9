"""Payment card numbers: a known issuer prefix and length, and a valid Luhn check digit.

Written as printed on cards and forms: four groups of four (``4111 1111 1111 1111``,
``5555-5555-5555-4444``) with one consistent separator, optionally a fifth group of 1–3
(19-digit cards), American Express and Diners as 4-6-5 and 4-6-4, or 13–19 digits in one
run. The issuer ranges are the public IIN ranges of Visa, Mastercard, American Express,
Discover, Diners Club, JCB, UnionPay and Maestro with their lengths; a number must also
pass the Luhn checksum, which 9 in 10 random digit strings fail. A run glued to a word or
to another number (``ORD-4111…``, ``v4111…``) or right after an id word (``order``,
``invoice``, ``tracking``, ``#``) is not a card.
"""

from __future__ import annotations

import re

from pipeline.pii._context import NEGATIVE_CONTEXT_RE
from pipeline.pii._model import Match

_CARD_RE = re.compile(
    r"(?<![\w\-./+,])"
    r"(?:[0-9]{4}([ \-])[0-9]{4}\1[0-9]{4}\1[0-9]{4}(?:\1[0-9]{1,3})?"
    r"|[0-9]{4}([ \-])[0-9]{6}\2[0-9]{4,5}"
    r"|[0-9]{13,19})"
    r"(?![\w@]|[.\-/,:][0-9])"
)
THIRTEEN_DIGITS_RE = re.compile(r"[0-9](?:[ \-]?[0-9]){12}")
"""Cheap pre-check: a card number has at least 13 digits."""
_CONTEXT = 24


def luhn_ok(digits: str) -> bool:
    """True when the last digit is the Luhn check digit of the others."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def issuer_length_ok(digits: str) -> bool:
    """True when the number starts with a known issuer's prefix and has one of its lengths."""
    n = len(digits)
    two, four, six = int(digits[:2]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16  # Mastercard
    if two in (34, 37):
        return n == 15  # American Express
    if digits.startswith("6011") or 644 <= int(digits[:3]) <= 649 or two == 65 \
            or 622126 <= six <= 622925:
        return 16 <= n <= 19  # Discover
    if 300 <= int(digits[:3]) <= 305 or two in (36, 38, 39):
        return 14 <= n <= 19  # Diners Club
    if 3528 <= four <= 3589:
        return 16 <= n <= 19  # JCB
    if two == 62:
        return 16 <= n <= 19  # UnionPay
    if two == 50 or 56 <= two <= 69:
        return 12 <= n <= 19  # Maestro
    return False


def scan_cards(masked: str, original: str, lower: str) -> list[Match]:
    """Card numbers in ``masked`` (earlier findings hidden; ``lower`` is ``original`` lowercased)."""
    if THIRTEEN_DIGITS_RE.search(masked) is None:
        return []
    found: list[Match] = []
    for m in _CARD_RE.finditer(masked):
        digits = m.group().replace(" ", "").replace("-", "")
        if not (issuer_length_ok(digits) and luhn_ok(digits)):
            continue
        if NEGATIVE_CONTEXT_RE.search(masked, max(0, m.start() - _CONTEXT), m.start()):
            continue
        found.append(Match("card", m.start(), m.end(), original[m.start():m.end()]))
    return found
