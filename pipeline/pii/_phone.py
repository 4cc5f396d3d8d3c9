"""Phone numbers: a fast regex proposes digit runs, shape rules decide, ``phonenumbers`` settles the rest.

A precompiled regex proposes runs of digit groups joined by single separators (space,
``-``, ``.``) with an optional ``+country`` prefix and optional parenthesized groups;
:func:`_valid_phone` keeps a run only when it is shaped like a phone number:

- international: ``+`` or ``00`` then a country code not starting with 0; 8–15 digits in
  total (E.164); every group after the country code has 2+ digits, except a single-digit
  area group right after it (``+33 1 …``) and a ``(0)`` trunk marker.
- North American: ``NXX NXX XXXX`` (area code and exchange not starting with 0 or 1), with
  one consistent separator or the area code in parentheses, optionally after a ``1``
  trunk prefix (``1-800-555-0199``, ``1.800.555.0199``, ``1 (415) 555-0132``).
- national with trunk prefix: starts with a single ``0``, 10–11 digits, groups of 2+
  digits, at least one separator (``020 7946 0958``, ``030 1234567``, ``(02) 9876 5432``).
- right after a phone word (``tel``, ``call me at``, ``my number is``…): a bare run of
  10–11 digits, or any run that the maintained libphonenumber metadata
  (``phonenumbers``) calls a valid number of one of :data:`CONTEXT_REGIONS`
  (``912 345 678`` in Spain, ``(11) 91234-5678`` in Brazil). The library is asked only
  then: on its own it reads ``2024-004512`` in ``ORD-2024-004512`` as a US number.

What the rules keep out: versions (``2.14.1``), dates (``2024-03-15``, ``15/03/2024``)
and times are too short or use ``/`` and ``:``; IP addresses are dot-joined 1–3 digit
groups; prices follow a currency sign and use commas; ids like ``ORD-2024-004512`` are
glued to a word by a hyphen; ISBNs and long ids have the wrong digit count or
single-digit groups, and an ``isbn``/``order``/``invoice``/``serial``/``version``/``#``
word right before a number vetoes it.

A run may not touch a word, a sign or a currency symbol on its left, nor a word
character, ``@`` or ``[.-/:,]digit`` on its right. A run that fails as a whole is
retried as its space-separated sub-runs (leftmost, then longest), so
``in 2024 call 415-555-0132`` still yields the phone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers

from pipeline.pii._context import NEGATIVE_CONTEXT_RE
from pipeline.pii._model import Match

CONTEXT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "MX", "IN",
                                    "AU", "JP", "CN")
"""Regions whose national formats count as a phone number after a phone word."""

# A candidate: optional +cc, then digit groups joined by one separator each; a group
# may be parenthesized; never followed by a word character or another number.
# The pattern starts with one character class so the scanner can skip prose fast;
# what may come before a candidate is checked in Python (_glued_before).
_PHONE_RE = re.compile(
    r"[+(0-9]"
    r"(?:(?<=\+)[0-9]{1,3}[ .\-]?(?:\([0-9]{1,5}\)|[0-9]{1,12})"
    r"|(?<=\()[0-9]{1,5}\)"
    r"|(?<=[0-9])[0-9]{0,11})"
    r"(?:(?:[ .\-]|(?<=\))|(?=\())(?:\([0-9]{1,5}\)|[0-9]{1,12}))*"
    r"(?![\w@]|[.\-/:,][0-9])"
)
_GLUE = frozenset("+-./$€£¥#@%^_")
_GROUP_RE = re.compile(r"\([0-9]+\)|[0-9]+")
_SEP_RE = re.compile(r"\d([ .\-])\d")
_PHONE_WORD_RE = re.compile(
    r"\b(?:phone|tel|telephone|call|mobile|cell|fax|contact|whatsapp|sms|text|dial|reach"
    r"|ring|number|hotline|helpline|llam|appel|t[ée]l[ée]phon|anruf|handy|movil|móvil)\w*\.?"
    r"(?:[\s:]+(?:me|us|him|her|them|back|directly|number|no\.?|is|was|at|on|via|al|le|au|unter)){0,3}"
    r"[\s:.\-]*$",
    re.IGNORECASE,
)
_CONTEXT = 32
_MAX_CHUNKS = 10
EIGHT_DIGITS_RE = re.compile(r"[0-9](?:[^0-9]*[0-9]){7}")
"""Cheap pre-check (in C): a phone number has at least 8 digits."""


def _groups(candidate: str) -> list[str]:
    return _GROUP_RE.findall(candidate)


def _valid_international(candidate: str) -> bool:
    body = candidate[1:] if candidate.startswith("+") else candidate[2:]
    groups = _groups(body)
    digits = "".join(g.strip("()") for g in groups)
    if not 8 <= len(digits) <= 15 or digits[0] == "0":
        return False
    if len(groups) == 1:
        return True  # compact E.164: +14155550132
    rest = groups[1:]
    for i, g in enumerate(rest):
        if g == "(0)" or len(g.strip("()")) >= 2 or (i == 0 and len(rest) > 2):
            continue
        return False
    return True


def _nanp(groups: list[str], candidate: str) -> bool:
    """``NXX NXX XXXX``, optionally after a ``1``: the area code parenthesized or one separator."""
    bare = [g.strip("()") for g in groups]
    if bare and len(bare) == 4 and bare[0] == "1":
        groups, bare = groups[1:], bare[1:]
    if [len(g) for g in bare] != [3, 3, 4] or bare[0][0] in "01" or bare[1][0] in "01":
        return False
    if groups[0].startswith("("):
        return True
    return len(set(_SEP_RE.findall(candidate))) == 1


def _valid_national(candidate: str, phone_word: bool) -> bool:
    groups = _groups(candidate)
    digits = "".join(g.strip("()") for g in groups)
    n = len(digits)
    if len(groups) == 1 and not groups[0].startswith("("):
        return n in (10, 11) and phone_word
    if _nanp(groups, candidate):
        return True
    if digits.startswith("0") and not digits.startswith("00") and 10 <= n <= 11:
        return all(len(g.strip("()")) >= 2 for g in groups) and len(groups) <= 5
    return False


def _valid_in_some_region(candidate: str) -> bool:
    # a one-digit group is a number next to the phone ("call 415-555-0132 2 times"), not part of it
    if any(len(g.strip("()")) < 2 for g in _groups(candidate)):
        return False
    for region in CONTEXT_REGIONS:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def _valid_phone(candidate: str, before: str) -> bool:
    if NEGATIVE_CONTEXT_RE.search(before) is not None:
        return False
    if candidate.startswith("+") or (candidate.startswith("00") and not candidate.startswith("000")):
        return _valid_international(candidate)
    phone_word = _PHONE_WORD_RE.search(before) is not None
    if _valid_national(candidate, phone_word):
        return True
    return phone_word and _valid_in_some_region(candidate)


def _digit_count(run: str) -> int:
    return len(run) - sum(run.count(c) for c in " .-()+")


def _glued_before(text: str, start: int) -> bool:
    """True when the character before ``start`` ties a number to a word, sign or other number."""
    if start == 0:
        return False
    ch = text[start - 1]
    return ch.isalnum() or ch in _GLUE


def _phone_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Valid phone spans inside one candidate run, trying space-split sub-runs."""
    cand = text[start:end]
    if _digit_count(cand) < 8:
        return
    glued = _glued_before(text, start)
    if not glued and _valid_phone(cand, text[max(0, start - _CONTEXT):start]):
        yield start, end
        return
    # sub-runs begin and end at spaces (a space can join unrelated numbers); a run
    # glued to the word before it may only contribute sub-runs after its first space
    spaces = [i for i, ch in enumerate(cand) if ch == " "]
    if not spaces:
        return
    cuts = [i + 1 for i in spaces] if glued else [0] + [i + 1 for i in spaces]
    stops = [*spaces, len(cand)]
    pos = 0
    while pos < len(cand):
        found = None
        for s in (c for c in cuts if c >= pos):
            # no valid phone spans more than _MAX_CHUNKS space-separated chunks
            ends = [t for t in stops if t > s][:_MAX_CHUNKS]
            for e in reversed(ends):
                piece = cand[s:e]
                if (s, e) == (0, len(cand)) or _digit_count(piece) < 8:
                    continue
                if _valid_phone(piece, text[max(0, start + s - _CONTEXT):start + s]):
                    found = (s, e)
                    break
            if found:
                break
        if found is None:
            return
        yield start + found[0], start + found[1]
        pos = found[1] + 1


def scan_phones(masked: str, original: str, lower: str) -> list[Match]:
    """Phone numbers in ``masked`` (earlier findings hidden; ``lower`` is ``original`` lowercased)."""
    if EIGHT_DIGITS_RE.search(masked) is None:
        return []
    found: list[Match] = []
    for m in _PHONE_RE.finditer(masked):
        if m.end() - m.start() >= 8:  # fewer characters cannot hold 8 digits
            found.extend(Match("phone", s, e, original[s:e])
                         for s, e in _phone_spans(masked, m.start(), m.end()))
    return found
