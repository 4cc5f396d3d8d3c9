"""Email and phone-number detection and scrubbing, tuned for precision.

Emails: ``local@domain.tld`` — a local part of letters, digits and ``._%+-`` (not
starting or ending with a dot, not right after a backslash escape such as ``\n``),
dot-separated domain labels that neither start nor end with a hyphen, and a TLD that
is a two-letter country code or one of :data:`GENERIC_TLDS` (so ``numpy@1.26``,
``a@self.weights`` and ``\n@pytest.mark.parametrize`` in code never match).

Phones: a precompiled regex proposes runs of digit groups joined by single
separators (space, ``-``, ``.``) with an optional ``+country`` prefix and optional
parenthesized groups; :func:`_valid_phone` then keeps a run only when it is
shaped like a phone number:

- international: ``+`` or ``00`` then a country code not starting with 0;
  8–15 digits in total (E.164); every group after the country code has 2+
  digits, except a single-digit area group right after it (``+33 1 …``) and a
  ``(0)`` trunk marker.
- North American: exactly ``NXX NXX XXXX`` (10 digits, area code not starting
  with 0 or 1), with one consistent separator, or the area code in parentheses.
- national with trunk prefix: starts with a single ``0``, 10–11 digits, groups
  of 2+ digits, at least one separator (``020 7946 0958``, ``030 1234567``).
- bare 10–11 digit runs only right after a phone word (``tel``, ``call``, …).

What the rules keep out: versions (``2.14.1``, ``v10.2.3``), dates
(``2024-03-15``, ``15/03/2024``) and times (``10:30``) are too short or use
``/`` and ``:``; IP addresses are dot-joined 1–3 digit groups; prices
(``$1,299.00``) follow a currency sign and use commas; ids like
``ORD-2024-004512`` are glued to a word by a hyphen; ISBNs and long ids have the
wrong digit count or single-digit groups, and an ``isbn``/``order``/``invoice``
/``serial``/``version``/``#`` word right before a number vetoes it.

A run may not touch a word, a sign or a currency symbol on its left, nor a word
character, ``@`` or ``[.-/:,]digit`` on its right. A run that fails as a whole is
retried as its space-separated sub-runs (leftmost, then longest), so
``in 2024 call 415-555-0132`` still yields the phone.

Scrubbing replaces matches with ``<EMAIL>`` / ``<PHONE>``. The placeholders hold no
digit and no ``@``, and detection repeats with every finding masked like a
placeholder until nothing new turns up (see :func:`find_pii`), so scrubbed text
yields no match and scrubbing twice changes nothing (property-tested).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

PiiKind = Literal["email", "phone"]
PLACEHOLDERS: dict[PiiKind, str] = {"email": "<EMAIL>", "phone": "<PHONE>"}

_EMAIL_RE = re.compile(
    r"(?<![\w.%+\-\\])"
    r"[A-Za-z0-9%+_\-](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9%+_\-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})"
    r"(?![A-Za-z0-9\-]|\.[A-Za-z0-9])"
)
# Generic TLDs accepted besides every two-letter country code; code such as
# ``x@self.weights`` or ``@pytest.mark.parametrize`` ends in a word that is none of these.
GENERIC_TLDS = frozenset((
    "com", "org", "net", "edu", "gov", "mil", "int", "info", "biz", "name", "pro", "mobi", "app",
    "dev", "io", "ai", "tech", "cloud", "online", "site", "email", "mail", "inc", "llc", "ltd",
    "company", "business", "shop", "store", "blog", "news", "media", "agency", "law", "legal",
    "health", "bank", "finance", "insurance", "consulting", "solutions", "services", "systems",
    "software", "digital", "group", "global", "world", "international", "team", "work", "jobs",
    "careers", "academy", "school", "university", "example", "test", "invalid", "localhost",
    "local", "internal", "corp", "home", "lan",
))

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
_NEGATIVE_CONTEXT_RE = re.compile(
    r"(?:\b(?:isbn|issn|doi|order|invoice|serial|sku|version|ticket|ref|iban|account|acct)|#)"
    r"[\s:#.\-]*(?:no\.?|number|id)?[\s:#.\-]*$",
    re.IGNORECASE,
)
_PHONE_WORD_RE = re.compile(
    r"\b(?:phone|tel|telephone|call|mobile|cell|fax|contact|whatsapp|sms|text|dial|reach)"
    r"\w*\s*(?:me|us|at|on|number|no\.?)?\s*[:.]?\s*$",
    re.IGNORECASE,
)
_CONTEXT = 24
_MAX_CHUNKS = 10


@dataclass(frozen=True)
class Match:
    """One PII finding in a text."""

    kind: PiiKind
    """``email`` or ``phone``."""
    start: int
    """Offset of the first character."""
    end: int
    """Offset just past the last character."""
    text: str
    """The matched characters."""


def _known_tld(tld: str) -> bool:
    return len(tld) == 2 or tld.lower() in GENERIC_TLDS


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


def _valid_national(candidate: str, before: str) -> bool:
    groups = _groups(candidate)
    digits = "".join(g.strip("()") for g in groups)
    n = len(digits)
    if len(groups) == 1 and not groups[0].startswith("("):
        return n in (10, 11) and _PHONE_WORD_RE.search(before) is not None
    bare = [g.strip("()") for g in groups]
    if [len(g) for g in bare] == [3, 3, 4] and bare[0][0] not in "01":
        if groups[0].startswith("("):
            return True
        seps = re.findall(r"\d([ .\-])\d", candidate)
        return len(set(seps)) == 1
    if digits.startswith("0") and not digits.startswith("00") and 10 <= n <= 11:
        return all(len(g) >= 2 for g in bare) and len(groups) <= 5
    return False


def _valid_phone(candidate: str, before: str) -> bool:
    if candidate.startswith("+") or (candidate.startswith("00") and not candidate.startswith("000")):
        shaped = _valid_international(candidate)
    else:
        shaped = _valid_national(candidate, before)
    return shaped and _NEGATIVE_CONTEXT_RE.search(before) is None


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


_EIGHT_DIGITS_RE = re.compile(r"[0-9](?:[^0-9]*[0-9]){7}")


def _mask(text: str, matches: list[Match]) -> str:
    """``text`` with each match replaced by ``<xx…x>`` of the same length.

    To the phone rules this looks like a placeholder (``<`` and ``>`` around letters, no
    digit), so a scan of the masked text sees what a scan of the scrubbed text would.
    """
    for m in sorted(matches, key=lambda m: m.start, reverse=True):
        text = text[:m.start] + "<" + "x" * (m.end - m.start - 2) + ">" + text[m.end:]
    return text


def _scan_phones(masked: str, original: str) -> list[Match]:
    found: list[Match] = []
    for m in _PHONE_RE.finditer(masked):
        if m.end() - m.start() >= 8:  # fewer characters cannot hold 8 digits
            found.extend(Match("phone", s, e, original[s:e])
                         for s, e in _phone_spans(masked, m.start(), m.end()))
    return found


def _scan_emails(masked: str, original: str) -> list[Match]:
    if "@" not in masked:
        return []
    return [Match("email", m.start(), m.end(), original[m.start():m.end()])
            for m in _EMAIL_RE.finditer(masked) if _known_tld(m.group(1))]


def find_pii(text: str) -> list[Match]:
    """All email and phone matches in ``text``, ordered by position, never overlapping.

    Emails are looked for first, then phones with the emails masked; then both again
    with everything found so far masked, until nothing new turns up. A candidate whose
    neighbour was PII (and will be a placeholder after scrubbing) is thus judged with
    the placeholder in place, which makes scrubbing idempotent.
    """
    may_have_phone = _EIGHT_DIGITS_RE.search(text) is not None  # cheap pre-check in C
    found: list[Match] = []
    masked = text
    while True:
        emails = _scan_emails(masked, text)
        masked = _mask(masked, emails) if emails else masked
        phones = _scan_phones(masked, text) if may_have_phone else []
        masked = _mask(masked, phones) if phones else masked
        if not emails and not phones:
            return sorted(found, key=lambda m: m.start)
        found += emails + phones


def scrub_text(text: str) -> tuple[str, dict[PiiKind, int]]:
    """Replace every match with its typed placeholder; returns the text and counts per kind."""
    counts: dict[PiiKind, int] = {"email": 0, "phone": 0}
    matches = find_pii(text)
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
