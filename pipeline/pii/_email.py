"""Email addresses: plain, internationalized and spelled out ("jane dot doe at example dot com").

A plain address is ``local@domain.tld``: the local part is letters (any script), digits
and ``._%+-'`` (not starting or ending with a dot or an apostrophe, so ``o'brien@…`` is
one address and ``'ops@…'`` in quotes is ``ops@…``), the domain is labels of letters,
digits and inner hyphens, and the TLD is one of the DNS root zone (:data:`ROOT_ZONE_TLDS`,
``.xyz``, ``.travel``, ``.museum``, IDN TLDs through their ``xn--`` form) or a reserved
name (``.example``, ``.test``, ``.internal``…). Code stays out: ``numpy@1.26``,
``a@self.weights``, ``x@y``, ``\\n@pytest.mark…`` (no local part after an escape),
``git@github.com:org/repo.git`` (a remote: ``host:path``, and ``git`` is the hosting
service's account), ``ssh://deploy@host`` (a URL's user).

A spelled-out address has ``at`` between local part and domain — in brackets
(``[at]``, ``(at)``, ``{at}``, ``<at>``) or as a word — and ``.`` or ``dot`` (bracketed or
a word) between labels. The bracketed ``at`` is unambiguous; the word ``at`` is English,
so more is asked: with a spelled ``dot`` the domain may not start with a pronoun or
article ("look at the dot com era") and the TLD must be a common one; with literal dots
the local part must look like one (a dot, ``_``, ``-``, ``+`` or a digit in it) or follow
a mail word ("email Jane at example.org"), and may not be a pronoun ("find us at example.com").
"""

from __future__ import annotations

import re

from pipeline.pii._model import Match
from pipeline.pii._tlds import ROOT_ZONE_TLDS

RESERVED_TLDS = frozenset((
    "example", "test", "invalid", "localhost", "local", "internal", "corp", "home", "lan",
    "intranet", "private", "onion",
))
"""Names outside the root zone that addresses in documentation and intranets use."""

_COMMON_SPELLED_TLDS = frozenset((
    "com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "io", "ai", "app", "dev",
    "co", "me", "xyz", "online", "site", "tech", "email", "example", "test", "internal",
))
_CODE_OWNERS = frozenset(("self", "this", "cls", "super"))  # x@self.weights is a matrix product
_SERVICE_ACCOUNTS = frozenset(("git",))  # git@host: the hosting service's ssh user, not a person
_NOT_A_LOCAL_PART = frozenset((
    "me", "us", "him", "her", "them", "you", "it", "we", "they", "i", "one", "all", "look",
    "here", "there", "this", "that", "is", "are", "was", "be", "and", "or", "not", "available",
    "hosted", "live", "online", "find", "see", "visit", "docs", "documentation",
))
_NOT_A_DOMAIN = frozenset((
    "the", "a", "an", "my", "your", "our", "his", "her", "their", "its", "this", "that",
    "these", "those", "some", "any", "each", "every", "least", "most", "all", "first", "last",
))

_ATEXT = r"[\w%+\-]"  # \w is Unicode: müller, josé, 用户
_LOCAL = rf"{_ATEXT}(?:[\w.%+'\-]{{0,62}}{_ATEXT})?"
_LABEL = r"[^\W_](?:[\w\-]{0,61}[^\W_])?"
_TLD = r"[^\W\d_]{2,63}|xn--[a-z0-9\-]{2,59}"
_END = r"(?![\w\-]|\.[^\W_]|:[\w/~]|@)"  # not more domain, not a remote's ":path"

_EMAIL_RE = re.compile(
    rf"(?:(?<![\w.%+\-\\])|(?<=\\[nrt]))({_LOCAL})@((?:{_LABEL}\.)+)({_TLD}){_END}"
)
# spelled-out form: found from its "at" (a literal search, fast), then a local part before it
# and a domain after it
_AT_WORDS = (" at ", "\tat", "at]", "at)", "at}", "at>")
_AT_HINT_RE = re.compile(r"(?i) at |\tat[ \t]|[\[({<][ \t]*at[ \t]*[\])}>]")
_AT_RE = re.compile(r"[ \t]*[\[({<][ \t]*(?:at|AT)[ \t]*[\])}>][ \t]*|[ \t]+(?:at|AT)[ \t]+")
_DOT = r"(?:[ \t]*[\[({<][ \t]*(?:dot|DOT)[ \t]*[\])}>][ \t]*|[ \t]+(?:dot|DOT)[ \t]+|\.)"
_TOKEN = r"[\w%+\-](?:[\w%+'\-]{0,62}[\w%+\-])?"  # no dots: every dot is a _DOT
_SPELLED_LOCAL_RE = re.compile(rf"(?<![\w.%+'\-@<>]){_TOKEN}(?:{_DOT}{_TOKEN})*\Z")
_SPELLED_DOMAIN_RE = re.compile(rf"{_LABEL}(?:{_DOT}{_LABEL})*{_DOT}({_TLD}){_END}")
_SPELLED_DOT_RE = re.compile(r"(?i)[\[({<][ \t]*dot[ \t]*[\])}>]|[ \t]dot[ \t]")
_LOCAL_SHAPE_RE = re.compile(r"[._+\-0-9]|(?i:\bdot\b)")
_MAIL_WORD_RE = re.compile(
    r"(?i)\b(?:e-?mail(?:ed|ing)?|mail|write|wrote|cc|contact|address|reply|inbox)\b[^.!?\n<>]{0,40}\Z")
_LOOKBACK = 160


def known_tld(tld: str) -> bool:
    """True for a TLD of the DNS root zone (any script) or a reserved name."""
    t = tld.lower()
    if t.isascii():
        return t in ROOT_ZONE_TLDS or t in RESERVED_TLDS
    try:
        return t.encode("idna").decode("ascii") in ROOT_ZONE_TLDS
    except UnicodeError:
        return False


def _plain_ok(m: re.Match[str], text: str) -> bool:
    local, domain, tld = m.group(1), m.group(2), m.group(3)
    if not known_tld(tld) or local.lower() in _SERVICE_ACCOUNTS:
        return False
    if text[max(0, m.start() - 3):m.start()] == "://":  # scheme://user@host
        return False
    return domain.split(".", 1)[0].lower() not in _CODE_OWNERS


def _spelled(masked: str, at: re.Match[str]) -> tuple[int, int] | None:
    """The span of a spelled-out address around one ``at``, or None."""
    domain = _SPELLED_DOMAIN_RE.match(masked, at.end())
    if domain is None or not known_tld(domain.group(1)):
        return None
    window_start = max(0, at.start() - _LOOKBACK)
    local = _SPELLED_LOCAL_RE.search(masked, window_start, at.start())
    if local is None:
        return None
    local_text, domain_text = local.group(), domain.group()
    first_label = re.split(r"[^\w\-]", domain_text, maxsplit=1)[0].lower()
    if local_text.lower() in _NOT_A_LOCAL_PART or first_label in _NOT_A_DOMAIN:
        return None
    bracketed_at = any(c in at.group() for c in "[({<")
    if not bracketed_at:
        if _SPELLED_DOT_RE.search(domain_text):
            tld = domain.group(1).lower()
            if len(tld) != 2 and tld not in _COMMON_SPELLED_TLDS:
                return None
        elif not (_LOCAL_SHAPE_RE.search(local_text)
                  or _MAIL_WORD_RE.search(masked, max(0, local.start() - 48), local.start())):
            return None
    return local.start(), domain.end()


def scan_emails(masked: str, original: str, lower: str) -> list[Match]:
    """Addresses in ``masked`` (earlier findings hidden; ``lower`` is ``original`` lowercased)."""
    found: list[Match] = []
    if "@" in masked:
        found = [Match("email", m.start(), m.end(), original[m.start():m.end()])
                 for m in _EMAIL_RE.finditer(masked) if _plain_ok(m, masked)]
    if not any(a in lower for a in _AT_WORDS):
        return found
    end = 0
    for hint in _AT_HINT_RE.finditer(masked):
        start = hint.start()
        while start > end and masked[start - 1] in " \t":
            start -= 1
        at = _AT_RE.match(masked, start)
        if at is None or start < end:
            continue
        span = _spelled(masked, at)
        if span is None or any(f.start < span[1] and span[0] < f.end for f in found):
            continue
        found.append(Match("email", span[0], span[1], original[span[0]:span[1]]))
        end = span[1]
    return sorted(found, key=lambda f: f.start)
