"""A second detector, written apart from the first, to check what the first one scrubbed.

Re-checking scrubbed text with the detector that scrubbed it can only confirm it: whatever
it missed, it misses again. These recognizers find the same classes by other methods, so
their blind spots are elsewhere:

- **phone**: libphonenumber's own matcher (``phonenumbers.PhoneNumberMatcher``, leniency
  ``VALID``: the number must be valid for its country by the library's metadata) where
  the first detector uses a regex and shape rules. It is run only on runs of digit groups
  (one separator between groups, ``/`` included) long enough to be a number (9+ digits, 8+
  after ``+``), not glued to a word or an id (``ORD-2024-004512``), not right after an id
  word (``order``, ``invoice``, ``#``…), not an IPv4 address, an ISBN or an SSN's shape;
  as US numbers and, for runs starting with a trunk ``0``, as numbers of 8 more countries.
- **email**: a character scan outward from each ``@`` (no regex), each domain label
  checked by the IDNA codec and the TLD against the root zone; spelled-out addresses by
  rewriting ``at``/``dot`` tokens (bracketed, or both as words) and scanning the result.
- **card**: every run of 13–19 digits (single spaces or hyphens between) with a Luhn
  check digit and a card industry's first digit (2–6), whatever its grouping, unless an
  id word comes right before it.
- **iban**: from each ``CCdd`` the longest run of groups whose ISO 7064 mod-97
  remainder, computed digit by digit, is 1 (no table of lengths).
- **national_id**: SSNs by splitting ``ddd-dd-dddd`` tokens, NINOs with any spacing,
  DNI/NIE check letters.
- **api_key**: tokens that start with a provider's published prefix and have enough
  entropy, JSON web tokens, PEM private key blocks; on lines that name a secret (``key``,
  ``token``, ``password``…), an assigned value that mixes digits and both cases.
- **ip**: tokens that :mod:`ipaddress` parses.

It is slower than the first detector where it calls ``phonenumbers`` and built for
agreement on clean text: on text without PII both find nothing.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable

import phonenumbers
from phonenumbers import Leniency

from pipeline.pii._model import DEFAULT_CLASSES, Match, PiiKind
from pipeline.pii._tlds import ROOT_ZONE_TLDS

_RESERVED = frozenset(("example", "test", "invalid", "localhost", "local", "internal", "corp",
                       "home", "lan", "intranet", "private", "onion"))

# ---- email -------------------------------------------------------------------------------

_LOCAL_PUNCT = "._%+-'"


def _tld_ok(label: str) -> bool:
    try:
        ascii_label = label.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return False
    return ascii_label in ROOT_ZONE_TLDS or ascii_label in _RESERVED


def _domain_ok(domain: str) -> bool:
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels):
        return False
    for label in labels:
        try:
            label.encode("idna")
        except UnicodeError:
            return False
        if label.startswith("-") or label.endswith("-"):
            return False
    tld = labels[-1]
    return tld.isalpha() and _tld_ok(tld) and labels[0].lower() not in ("self", "this", "cls")


def _at_addresses(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each address found by scanning outward from an ``@``."""
    spans: list[tuple[int, int]] = []
    at = text.find("@")
    while at != -1:
        i = at
        while i > 0 and (text[i - 1].isalnum() or text[i - 1] in _LOCAL_PUNCT):
            i -= 1
        while i < at and text[i] in ".'":
            i += 1
        j = at + 1
        while j < len(text) and (text[j].isalnum() or text[j] in ".-"):
            j += 1
        while j > at + 1 and text[j - 1] in ".-":
            j -= 1
        local, domain = text[i:at], text[at + 1:j]
        escaped = i > 0 and text[i - 1] == "\\"
        remote = j + 1 < len(text) and text[j] == ":" and not text[j + 1].isspace()
        url_user = text[max(0, i - 3):i] == "://"
        if (local and not local.endswith(".") and local.lower() != "git" and not escaped
                and not remote and not url_user and _domain_ok(domain)):
            spans.append((i, j))
        at = text.find("@", max(j, at + 1))
    return spans


_SPELLED_RE = re.compile(r"(?i)[ \t]*[\[({<][ \t]*(at|dot)[ \t]*[\])}>][ \t]*|[ \t]+(at|dot)[ \t]+")
_SPELLED_TLDS = frozenset(("com", "net", "org", "edu", "gov", "io", "ai", "co", "app", "dev", "info"))
_NOT_NAMES = frozenset(("the", "a", "an", "my", "your", "our", "me", "us", "them", "him", "her",
                        "look", "this", "that", "it"))


def _spelled_addresses(text: str) -> list[tuple[int, int]]:
    """Addresses written with ``at``/``dot`` tokens: rewritten to ``@``/``.``, scanned, mapped back."""
    tokens = list(_SPELLED_RE.finditer(text))
    if not any((m.group(1) or m.group(2)).lower() == "at" for m in tokens):
        return []
    out: list[str] = []
    origin: list[int] = []
    pos = 0
    for m in tokens:
        out.extend(text[pos:m.start()])
        origin.extend(range(pos, m.start()))
        out.append("@" if (m.group(1) or m.group(2)).lower() == "at" else ".")
        origin.append(m.start())
        pos = m.end()
    out.extend(text[pos:])
    origin.extend(range(pos, len(text)))
    rewritten = "".join(out)
    spans: list[tuple[int, int]] = []
    for s, e in _at_addresses(rewritten):
        start, end = origin[s], origin[e - 1] + 1
        original = text[start:end]
        if "@" in original:
            continue  # a plain address, found on the text itself
        bracketed_at = re.search(r"(?i)[\[({<][ \t]*at[ \t]*[\])}>]", original) is not None
        spelled_dot = re.search(r"(?i)[ \t\[({<]dot[ \t\])}>]", original) is not None
        if not bracketed_at:
            local, domain = rewritten[s:e].split("@", 1)
            tld = domain.rsplit(".", 1)[-1].lower()
            if not spelled_dot or local.lower() in _NOT_NAMES or \
                    domain.split(".")[0].lower() in _NOT_NAMES or \
                    (len(tld) != 2 and tld not in _SPELLED_TLDS):
                continue
        spans.append((start, end))
    return spans


_BRACKET_AT_RE = re.compile(r"(?i)[\[({<][ \t]*at[ \t]*[\])}>]")
_WORD_AT_RE = re.compile(r"(?i) at ")
_WORD_DOT_RE = re.compile(r"(?i) dot |[\[({<][ \t]*dot[ \t]*[\])}>]")


def _emails(text: str) -> list[tuple[int, int]]:
    spans = _at_addresses(text) if "@" in text else []
    if _BRACKET_AT_RE.search(text) or (_WORD_DOT_RE.search(text) and _WORD_AT_RE.search(text)):
        spans += _spelled_addresses(text)
    return spans


# ---- phone -------------------------------------------------------------------------------

# digit groups (a group may be parenthesized) with one separator between them
_RUN_RE = re.compile(r"\+?(?:\([0-9]+\)|[0-9]+)(?:(?:[ .\-/]|(?<=\)))(?:\([0-9]+\)|[0-9]+))*")
_IPV4_SHAPE_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_TRUNK_REGIONS = ("GB", "DE", "FR", "IT", "NL", "AU", "JP", "IN")
_GLUE = "-_#/.$€£¥@%"
_EIGHT_DIGITS_RE = re.compile(r"[0-9](?:[^0-9]*[0-9]){7}")
_ISBN_OR_SSN_RE = re.compile(r"-[0-9X]$|^[0-9]{3}-[0-9]{2}-[0-9]{4}$")
_ID_WORDS = frozenset(("order", "invoice", "ticket", "ref", "reference", "isbn", "serial", "sku",
                       "tracking", "account", "acct", "case", "build", "version", "upc", "ean", "gtin",
                       "no", "id", "number"))
_LAST_WORD_RE = re.compile(r"([A-Za-z]+)[^A-Za-z0-9]{0,4}$")


def _after_id_word(text: str, start: int) -> bool:
    """True when the word right before ``start`` names an identifier (``order``, ``#``…)."""
    before = text[max(0, start - 24):start].rstrip()
    if before.endswith("#"):
        return True
    last = _LAST_WORD_RE.search(before)
    if last is None or last.group(1).lower() not in _ID_WORDS:
        return False
    if last.group(1).lower() in ("no", "id", "number"):  # "order no.", "phone number"
        words = re.findall(r"[A-Za-z]+", before.lower())
        return len(words) >= 2 and words[-2] in _ID_WORDS - {"no", "id", "number"}
    return True


def _matched(window: str, offset: int, regions: tuple[str, ...]) -> list[tuple[int, int]]:
    for region in regions:
        hits = [(offset + h.start, offset + h.end)
                for h in phonenumbers.PhoneNumberMatcher(window, region, leniency=Leniency.VALID)]
        if hits:
            return hits
    return []


def _phones(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if _EIGHT_DIGITS_RE.search(text) is None:
        return spans
    for m in _RUN_RE.finditer(text):
        s, e = m.span()
        if e - s < 8:  # fewer characters cannot hold 8 digits
            continue
        run = m.group()
        digits = sum(ch.isdigit() for ch in run)
        if digits < (8 if run.startswith("+") else 9) or digits > 17 or _IPV4_SHAPE_RE.fullmatch(run):
            continue
        before = text[s - 1] if s else " "
        after = text[e:e + 2] + "  "
        if before.isalnum() or before in _GLUE or after[0].isalnum() or after[0] in "-_@" \
                or (after[0] in ":.," and after[1].isdigit()) or _after_id_word(text, s):
            continue
        if _ISBN_OR_SSN_RE.search(run):
            continue  # an ISBN's check digit group, or the 3-2-4 shape of an SSN
        if run[-2:-1] == " " and run[-1].isdigit():  # "415-555-0132 2 times": a count follows
            run, e = run[:-2], e - 2
        lead = run.lstrip("+(")
        regions: tuple[str, ...] = ("US",)
        if lead.startswith("0"):
            regions += _TRUNK_REGIONS
        hits = _matched(text[max(0, s - 1):e + 1], max(0, s - 1), regions)
        if not hits and " " in run:  # "020 7946 0958 12 times": without the trailing group
            cut = run.rindex(" ")
            hits = _matched(text[max(0, s - 1):s + cut + 1], max(0, s - 1), regions)
        spans += hits
    return spans


# ---- card, iban, national id -------------------------------------------------------------

_DIGIT_RUN_RE = re.compile(r"[0-9](?:[ \-]?[0-9]){12,18}")
_FOUR_FOUR_RE = re.compile(r"[0-9]{4}[ \-]?[0-9]{4}")  # how every card number starts


def _luhn(digits: list[int]) -> bool:
    odd = digits[-1::-2]
    even = [sum(divmod(2 * d, 10)) for d in digits[-2::-2]]
    return (sum(odd) + sum(even)) % 10 == 0


def _cards(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if _FOUR_FOUR_RE.search(text) is None:
        return spans
    for m in _DIGIT_RUN_RE.finditer(text):
        s, e = m.span()
        if (s and (text[s - 1].isalnum() or text[s - 1] in "-./")) or \
                (e < len(text) and (text[e].isalnum() or text[e] in "-@")):
            continue
        digits = [int(c) for c in m.group() if c.isdigit()]
        if digits[0] in (2, 3, 4, 5, 6) and _luhn(digits) and not _after_id_word(text, s):
            spans.append((s, e))
    return spans


_COUNTRY_CHECK_RE = re.compile(r"[A-Z]{2}[0-9]{2}")


def _mod97(chars: str) -> int:
    remainder = 0
    for ch in chars:
        value = int(ch, 36)
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
    return remainder


def _ibans(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _COUNTRY_CHECK_RE.finditer(text):
        if m.start() and text[m.start() - 1].isalnum():
            continue
        # compact characters after CCdd, with the end offset of each group boundary
        body: list[str] = []
        ends: list[tuple[int, int]] = []
        i = m.end()
        while i < len(text) and len(body) < 30:
            ch = text[i]
            if ch.isdigit() or "A" <= ch <= "Z":
                body.append(ch)
                i += 1
                if i == len(text) or not (text[i].isdigit() or "A" <= text[i] <= "Z"):
                    ends.append((len(body), i))
            elif ch == " " and i + 1 < len(text) and (text[i + 1].isdigit() or "A" <= text[i + 1] <= "Z"):
                i += 1
            else:
                break
        head = m.group()
        for size, end in reversed(ends):
            if 11 <= size <= 30 and _mod97("".join(body[:size]) + head) == 1:
                if end == len(text) or not text[end].isalnum():
                    spans.append((m.start(), end))
                break
    return spans


_SSN_TOKEN_RE = re.compile(r"[0-9-]{11}")
_NINO_LOOSE_RE = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2})((?: ?[0-9]{2}){3}) ?([A-D])(?![A-Za-z0-9])")
_NINO_FIRST, _NINO_SECOND = set("ABCEGHJKLMNOPRSTWXYZ"), set("ABCEGHJKLMNPRSTWXYZ")
_DNI_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])([XYZ]?[0-9]{7,8})-?([A-Z])(?![A-Za-z0-9])")


_DASHES_RE = re.compile(r"-[0-9]{2}-")
_ENDS_IN_LETTER_RE = re.compile(r"[0-9][ \-]?[A-Z]")


def _national_ids(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for m in (_SSN_TOKEN_RE.finditer(text) if _DASHES_RE.search(text) else ()):
        s, e = m.span()
        parts = m.group().split("-")
        if [len(p) for p in parts] != [3, 2, 4]:
            continue
        if (s and (text[s - 1].isalnum() or text[s - 1] in "-./")) or \
                (e < len(text) and (text[e].isalnum() or text[e] in "-")):
            continue
        area = int(parts[0])
        if 1 <= area <= 899 and area != 666 and int(parts[1]) and int(parts[2]) \
                and "".join(parts) not in ("078051120", "219099999", "457555462"):
            spans.append((s, e))
    if not _ENDS_IN_LETTER_RE.search(text):
        return spans
    for m in _NINO_LOOSE_RE.finditer(text):
        prefix = m.group(1)
        if prefix[0] in _NINO_FIRST and prefix[1] in _NINO_SECOND and \
                prefix not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
            spans.append(m.span())
    for m in _DNI_TOKEN_RE.finditer(text):
        number = m.group(1)
        if number[0] in "XYZ":
            number = str("XYZ".index(number[0])) + number[1:]
        if len(number) == 8 and "TRWAGMYFPDXBNJZSQVHLCKE"[int(number) % 23] == m.group(2):
            spans.append(m.span())
    return spans


# ---- api key, ip -------------------------------------------------------------------------

_KEY_PREFIXES = ("sk-", "sk_live_", "sk_test_", "rk_live_", "rk_test_", "AKIA", "ASIA", "ghp_",
                 "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "xoxa-",
                 "xoxr-", "xoxs-", "xapp-", "AIza", "hf_", "npm_", "SG.")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_\-.+/]{19,}")
_SECRET_WORDS = ("key", "secret", "token", "passw", "pwd")
_ASSIGNMENT_RE = re.compile(
    r"(?i)(?:key|secret|token|password|passwd|pwd)[\"']?[ \t]*[:=][ \t]*[\"']?([^\s\"',;)}\]]{16,})")
_PEM_RE = re.compile(r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?-----END[A-Z ]*PRIVATE KEY-----", re.DOTALL)


def _bits(value: str) -> float:
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


_PREFIX_HINT_RE = re.compile("|".join(re.escape(p) for p in (*_KEY_PREFIXES, "eyJ", "-----BEGIN")))


def _api_keys(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if any(k in text.lower() for k in _SECRET_WORDS):
        offset = 0
        for line in text.splitlines(keepends=True):  # only lines that name a secret are searched
            lowered = line.lower()
            if any(w in lowered for w in _SECRET_WORDS) and ("=" in line or ":" in line):
                spans += _assigned(line, offset)
            offset += len(line)
    for hit in _PREFIX_HINT_RE.finditer(text):
        s = hit.start()
        if hit.group() == "-----BEGIN":
            spans += [p.span() for p in [_PEM_RE.match(text, s)] if p is not None]
            continue
        m = _TOKEN_RE.match(text, s)
        if m is None or (s and (text[s - 1].isalnum() or text[s - 1] in "_-")):
            continue
        token = m.group().rstrip(".")
        prefix = next((p for p in _KEY_PREFIXES if token.startswith(p)), None)
        if prefix is not None:
            rest = token[len(prefix):]
            mixed = any(c.isdigit() for c in rest) or (any(c.isupper() for c in rest)
                                                       and any(c.islower() for c in rest))
            if len(rest) >= 16 and _bits(rest) >= 3.0 and mixed:
                spans.append((s, s + len(token)))
        elif token.startswith("eyJ") and token.count(".") == 2 and ".eyJ" in token:
            spans.append((s, s + len(token)))
    return spans


def _assigned(line: str, offset: int) -> list[tuple[int, int]]:
    spans = []
    for m in _ASSIGNMENT_RE.finditer(line):
        value = m.group(1)
        kinds = sum((any(c.isdigit() for c in value), any(c.islower() for c in value),
                     any(c.isupper() for c in value)))
        if kinds == 3 and _bits(value) >= 3.5 and not value.startswith(("$", "<", "%")):
            spans.append((offset + m.start(1), offset + m.end(1)))
    return spans


_IP_TOKEN_RE = re.compile(r"[0-9A-Fa-f:.]{7,45}")


_IP_HINT_RE = re.compile(r"\.[0-9]{1,3}\.|:[0-9A-Fa-f]{0,4}:")


def _ips(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if _IP_HINT_RE.search(text) is None:
        return spans
    for m in _IP_TOKEN_RE.finditer(text):
        token = m.group().rstrip(".:")
        s = m.start()
        if (s and (text[s - 1].isalnum() or text[s - 1] in "-_")) or \
                re.search(r"(?i)\b(?:v|version|build|release)[\s:]*$", text[max(0, s - 16):s]):
            continue
        e = s + len(token)
        if e < len(text) and (text[e].isalnum() or text[e] in "-_"):
            continue
        try:
            address = ipaddress.ip_address(token)
        except ValueError:
            continue
        if address.version == 4 or len([g for g in token.split(":") if g]) >= 3:
            spans.append((s, e))
    return spans


_RECOGNIZERS: dict[PiiKind, Callable[[str], list[tuple[int, int]]]] = {
    "email": _emails, "api_key": _api_keys, "iban": _ibans, "card": _cards,
    "national_id": _national_ids, "ip": _ips, "phone": _phones,
}
_ORDER: tuple[PiiKind, ...] = ("email", "api_key", "iban", "card", "national_id", "ip", "phone")


def find_pii_second(text: str, classes: Iterable[str] = DEFAULT_CLASSES) -> list[Match]:
    """What the second detector finds of ``classes`` in ``text``, by position, never overlapping."""
    wanted = set(classes)
    unknown = wanted - set(_ORDER)
    if unknown:
        raise ValueError(f"unknown PII class {sorted(unknown)[0]!r}")
    found: list[Match] = []
    for kind in _ORDER:
        if kind not in wanted:
            continue
        for s, e in sorted(set(_RECOGNIZERS[kind](text))):
            if not any(f.start < e and s < f.end for f in found):
                found.append(Match(kind, s, e, text[s:e]))
    return sorted(found, key=lambda m: m.start)
