"""PII detection and scrubbing: emails, phones, card numbers, IBANs, national ids, API keys, IPs.

Two detectors look for the same classes (:data:`ALL_CLASSES`):

- :func:`find_pii` (the one that scrubs) runs a recognizer per class — regexes with
  rules, checksums (Luhn, mod 97, check letters) and, for phone numbers in national
  formats after a phone word, the ``phonenumbers`` metadata — tuned for precision on
  agent trajectories: code, logs, versions, dates, prices, ids and hashes stay as they are.
- :func:`find_pii_second` finds them by other methods (libphonenumber's matcher for
  phones, a character scan for emails, …) to re-check scrubbed text: what the first
  detector missed, it missed everywhere, so only a different detector can see it.

Classes are chosen per call; :data:`DEFAULT_CLASSES` is all but ``ip``. Scrubbing
replaces each finding with its typed placeholder (:data:`PLACEHOLDERS`: ``<EMAIL>``,
``<PHONE>``, ``<CARD>``, ``<IBAN>``, ``<NATIONAL_ID>``, ``<API_KEY>``, ``<IP>``); scrubbed
text yields no match and scrubbing it again changes nothing (property-tested).
:mod:`pipeline.pii.evaluate` scores a detector on a labelled set
(``bench/data/pii_labelled.jsonl``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.pii._detect import find_pii, prefilter, scrub_text
from pipeline.pii._model import (
    ALL_CLASSES,
    DEFAULT_CLASSES,
    PLACEHOLDERS,
    Match,
    PiiKind,
    pii_classes,
)
from pipeline.pii._second import find_pii_second


def _source_digest() -> str:
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


DETECTOR_VERSION = _source_digest()
"""A digest of this package's code: a step that records it reruns when a detector changes."""

__all__ = [
    "ALL_CLASSES",
    "DEFAULT_CLASSES",
    "DETECTOR_VERSION",
    "PLACEHOLDERS",
    "Match",
    "PiiKind",
    "find_pii",
    "find_pii_second",
    "pii_classes",
    "prefilter",
    "scrub_text",
]
