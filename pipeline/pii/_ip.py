"""IP addresses (IPv4 dotted quads and IPv6), off by default.

IPv4: four dot-joined numbers 0–255 without leading zeros, not glued to a word, another
dot or digit (so no part of ``1.2.3.4.5``), and not right after ``version``/``v``/``build``
(``v1.2.3.4`` is a version). IPv6: a run of hex groups and colons with at least two
colons and three groups that :mod:`ipaddress` accepts (``2001:db8::8a2e:370:7334``,
``::ffff:192.0.2.1``); ``10:30:45`` and ``std::vector`` are not.
"""

from __future__ import annotations

import ipaddress
import re

from pipeline.pii._model import Match

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4_RE = re.compile(rf"(?<![\w.\-])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w\-]|\.[0-9])")
_IPV6_RE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?"
    r"(?![\w:]|\.[0-9])"
)
_VERSION_RE = re.compile(r"(?i)(?:\bv|\bversion|\bbuild|\brelease)[\s:]*$")
_IPV4_HINT_RE = re.compile(r"\.[0-9]{1,3}\.[0-9]{1,3}\.")  # literal-led searches: fast on long text
_IPV6_HINT_RE = re.compile(r":[0-9A-Fa-f]{0,4}:")


def _ipv6_ok(candidate: str) -> bool:
    groups = [g for g in re.split(r"[:.]", candidate) if g]
    if len(groups) < 3 or candidate.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def scan_ips(masked: str, original: str, lower: str) -> list[Match]:
    """IP addresses in ``masked`` (earlier findings hidden; ``lower`` is ``original`` lowercased)."""
    found: list[Match] = []
    if _IPV4_HINT_RE.search(masked):
        for m in _IPV4_RE.finditer(masked):
            if _VERSION_RE.search(masked, max(0, m.start() - 16), m.start()) is None:
                found.append(Match("ip", m.start(), m.end(), original[m.start():m.end()]))
    if _IPV6_HINT_RE.search(masked):
        for m in _IPV6_RE.finditer(masked):
            if _ipv6_ok(m.group()) and not any(f.start < m.end() and m.start() < f.end for f in found):
                found.append(Match("ip", m.start(), m.end(), original[m.start():m.end()]))
    return sorted(found, key=lambda f: f.start)
