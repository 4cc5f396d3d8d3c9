"""The primary detector: every enabled class's recognizer, in a fixed order, until nothing new turns up."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache

from pipeline.pii._api_key import HINT_RE as _API_KEY_HINT
from pipeline.pii._api_key import scan_api_keys
from pipeline.pii._card import scan_cards
from pipeline.pii._email import scan_emails
from pipeline.pii._iban import scan_ibans
from pipeline.pii._ip import scan_ips
from pipeline.pii._model import DEFAULT_CLASSES, PLACEHOLDERS, Match, PiiKind, pii_classes
from pipeline.pii._national_id import scan_national_ids
from pipeline.pii._phone import scan_phones

Scanner = Callable[[str, str, str], list[Match]]

SCAN_ORDER: tuple[PiiKind, ...] = ("email", "api_key", "iban", "card", "national_id", "ip", "phone")
"""Order of the recognizers: a finding hides its characters from the ones after it, so the
classes with a checksum or a fixed prefix go before phones (an IBAN's digit groups or a
card number never become a phone)."""

_SCANNERS: dict[PiiKind, Scanner] = {
    "email": scan_emails, "api_key": scan_api_keys, "iban": scan_ibans, "card": scan_cards,
    "national_id": scan_national_ids, "ip": scan_ips, "phone": scan_phones,
}
HINTS: dict[PiiKind, str] = {
    "email": r"@|(?i:[\[({<]\s*at\s*[\])}>]|\bat\s+\S+(?:\.|\s+dot\s+)\S)",
    "phone": r"[0-9](?:[^0-9]*[0-9]){7}",
    "card": r"[0-9](?:[ \-]?[0-9]){12}",
    "iban": r"[A-Z]{2}[0-9]{2}",
    "national_id": r"[0-9]{3}-[0-9]{2}-|[0-9]{2} ?[0-9]{2} ?[0-9]{2}|[0-9]{7}",
    "api_key": _API_KEY_HINT.pattern,
    "ip": r"[0-9]\.[0-9]|[0-9A-Fa-f]:[0-9A-Fa-f:]",
}
"""Per class, a pattern that every text holding that class matches (what both detectors need)."""


@lru_cache(maxsize=64)
def _plan(classes: frozenset[str]) -> tuple[PiiKind, ...]:
    wanted = set(pii_classes(classes))
    return tuple(k for k in SCAN_ORDER if k in wanted)


def scan_order(classes: Iterable[str]) -> tuple[PiiKind, ...]:
    """The enabled classes in :data:`SCAN_ORDER`; raises ``ValueError`` for an unknown name."""
    return _plan(frozenset(classes))


@lru_cache(maxsize=64)
def _prefilter(classes: frozenset[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{HINTS[k]})" for k in _plan(classes)) or r"(?!)")


def prefilter(classes: Iterable[str] = DEFAULT_CLASSES) -> re.Pattern[str]:
    """A regex that a text holding any of ``classes`` matches: no match, nothing to look for."""
    return _prefilter(frozenset(classes))


def mask(text: str, matches: list[Match]) -> str:
    """``text`` with each match replaced by ``<xx…x>`` of the same length.

    To every recognizer this looks like a placeholder (``<`` and ``>`` around letters, no
    digit, no ``@``), so a scan of the masked text sees what a scan of the scrubbed text would.
    """
    for m in sorted(matches, key=lambda m: m.start, reverse=True):
        text = text[:m.start] + "<" + "x" * (m.end - m.start - 2) + ">" + text[m.end:]
    return text


def find_pii(text: str, classes: Iterable[str] = DEFAULT_CLASSES) -> list[Match]:
    """Every match of ``classes`` in ``text``, ordered by position, never overlapping.

    The recognizers run in :data:`SCAN_ORDER`, each on the text with earlier findings
    masked; then all again with everything found so far masked, until nothing new turns
    up. A candidate whose neighbour was PII (and will be a placeholder after scrubbing) is
    thus judged with the placeholder in place, which makes scrubbing idempotent.
    """
    order = scan_order(classes)
    found: list[Match] = []
    masked, lower = text, text.lower()
    while True:
        new: list[Match] = []
        for kind in order:
            matches = _SCANNERS[kind](masked, text, lower)
            if matches:
                masked = mask(masked, matches)
                new += matches
        if not new:
            return sorted(found, key=lambda m: m.start)
        found += new


def scrub_text(text: str, classes: Iterable[str] = DEFAULT_CLASSES) -> tuple[str, dict[PiiKind, int]]:
    """Replace every match with its typed placeholder; returns the text and counts per class."""
    counts: dict[PiiKind, int] = dict.fromkeys(pii_classes(classes), 0)
    matches = find_pii(text, counts)
    if not matches:
        return text, counts
    parts: list[str] = []
    pos = 0
    for m in matches:
        parts.append(text[pos:m.start])
        parts.append(PLACEHOLDERS[m.kind])
        counts[m.kind] += 1
        pos = m.end
    parts.append(text[pos:])
    return "".join(parts), counts
