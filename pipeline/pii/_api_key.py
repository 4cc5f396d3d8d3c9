"""API keys and other secrets: the documented shapes of well-known providers, and assigned secrets.

Provider shapes (prefix, alphabet, length as the providers publish them): OpenAI
(``sk-…``, ``sk-proj-…``), Anthropic (``sk-ant-api03-…``), AWS access key ids
(``AKIA…``/``ASIA…``, 16 base-32 characters after the prefix), GitHub tokens
(``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_`` and 36 characters, ``github_pat_…``), GitLab
(``glpat-…``), Slack (``xoxb-``/``xoxp-``/``xoxa-``/``xoxr-``/``xoxs-``, ``xapp-``),
Stripe (``sk_live_``/``rk_live_``/``sk_test_``…), Google (``AIza`` and 35 characters),
Hugging Face (``hf_…``), npm (``npm_…``), SendGrid (``SG.….…``), JSON web tokens
(``eyJ….eyJ….…``) and PEM private key blocks. A bare ``sk-`` word also needs digits and
both cases in it, so ``sk-learn-compatible`` is no key.

Assigned secrets: a value right after ``api_key``, ``secret``, ``token``, ``password``,
``access_key``, ``client_secret``, ``aws_secret_access_key``… and ``=`` or ``:``, quoted
or not, of 16+ characters that mixes letters and digits with at least 3.5 bits of entropy
per character — which placeholders (``<API_KEY>``, ``${API_KEY}``, ``your-api-key-here``,
``os.environ["API_KEY"]``) do not. Only the value is the finding.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

from pipeline.pii._model import Match

_B = r"(?<![\w\-])"  # the key starts a token
_E = r"(?![\w\-])"  # and ends it
_PROVIDER_RE = re.compile(
    "|".join((
        rf"{_B}sk-ant-(?:api|admin)[0-9]{{2}}-[A-Za-z0-9_\-]{{32,}}{_E}",
        rf"{_B}(?P<openai>sk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_\-]{{20,}}){_E}",
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?![A-Za-z0-9])",
        rf"{_B}gh[pousr]_[A-Za-z0-9]{{36,251}}{_E}",
        rf"{_B}github_pat_[A-Za-z0-9_]{{22,255}}{_E}",
        rf"{_B}glpat-[A-Za-z0-9_\-]{{20,}}{_E}",
        rf"{_B}xox[abprs]-(?:[0-9]+-)+[A-Za-z0-9]+{_E}",
        rf"{_B}xapp-[0-9]-[A-Z0-9]+-[0-9]+-[a-z0-9]+{_E}",
        rf"{_B}(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{{16,}}{_E}",
        rf"{_B}AIza[A-Za-z0-9_\-]{{35}}{_E}",
        rf"{_B}hf_[A-Za-z0-9]{{30,}}{_E}",
        rf"{_B}npm_[A-Za-z0-9]{{36}}{_E}",
        rf"{_B}SG\.[A-Za-z0-9_\-]{{22}}\.[A-Za-z0-9_\-]{{43}}{_E}",
        rf"{_B}eyJ[A-Za-z0-9_\-]{{8,}}\.eyJ[A-Za-z0-9_\-]{{8,}}\.[A-Za-z0-9_\-]{{8,}}{_E}",
        r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]{16,}?-----END (?:[A-Z]+ )*PRIVATE KEY-----",
    ))
)
_PREFIX_RE = re.compile(
    r"sk-|sk_|rk_|AKIA|ASIA|ABIA|ACCA|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|glpat-|xox|xapp-|AIza"
    r"|hf_|npm_|SG\.|eyJ|-----BEGIN"
)
"""Where a provider's key may start (a literal search, fast); the shape is then matched there."""
_KEYWORD_RE = re.compile(
    r"api[_\-]?key|apikey|secret(?:[_\-]?access)?(?:[_\-]?key)?|access[_\-]?key|token|password"
    r"|passwd|pwd"
)
"""Names of a secret, searched in the lowercased text."""
_VALUE = r"[\"']?\s*(?:=>|=|:)\s*[\"']?([A-Za-z0-9+/=_\-.~]{16,256})(?![A-Za-z0-9+/=_\-.~])"
_ASSIGNED_TAIL_RE = re.compile(_VALUE)
_ASSIGNED_RE = re.compile(rf"(?i:{_KEYWORD_RE.pattern}){_VALUE}")  # for text whose case folding moves offsets
HINT_RE = re.compile(rf"{_PREFIX_RE.pattern}|(?i:key|secret|token|passw|pwd)")
"""Cheap pre-check: every secret shape contains one of these."""
_MIN_ENTROPY = 3.5


def entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _random_enough(value: str) -> bool:
    has_digit = any(ch.isdigit() for ch in value)
    has_upper = any(ch.isupper() for ch in value)
    has_lower = any(ch.islower() for ch in value)
    return has_digit and has_upper and has_lower


def _assigned_ok(value: str) -> bool:
    if not any(ch.isdigit() for ch in value) or not any(ch.isalpha() for ch in value):
        return False
    return entropy(value) >= _MIN_ENTROPY


_KEYWORD_HINTS = ("key", "secret", "token", "passw", "pwd")


def _assigned_values(masked: str, lower: str) -> list[tuple[int, int]]:
    if not any(k in lower for k in _KEYWORD_HINTS):
        return []
    values: Iterable[re.Match[str] | None]
    if len(lower) == len(masked):
        values = (_ASSIGNED_TAIL_RE.match(masked, k.end()) for k in _KEYWORD_RE.finditer(lower))
    else:
        values = _ASSIGNED_RE.finditer(masked)
    return [v.span(1) for v in values if v is not None and _assigned_ok(v.group(1))]


def scan_api_keys(masked: str, original: str, lower: str) -> list[Match]:
    """Secrets in ``masked`` (earlier findings hidden; ``lower`` is ``original`` lowercased)."""
    spans: list[tuple[int, int]] = []
    for hit in _PREFIX_RE.finditer(masked):
        if spans and hit.start() < spans[-1][1]:
            continue
        m = _PROVIDER_RE.match(masked, hit.start())
        if m is None:
            continue
        key = m.group("openai")
        if key is not None and not key.startswith("sk-proj-") and not _random_enough(key[3:]):
            continue
        spans.append(m.span())
    spans += _assigned_values(masked, lower)
    found: list[Match] = []
    for s, e in sorted(set(spans)):
        if found and s < found[-1].end:
            continue
        found.append(Match("api_key", s, e, original[s:e]))
    return found
