"""The PII classes, their placeholders and one finding."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

PiiKind = Literal["email", "phone", "card", "iban", "national_id", "api_key", "ip"]
"""A class of PII the detectors know."""

ALL_CLASSES: tuple[PiiKind, ...] = get_args(PiiKind)
"""Every class, in the order reports list them."""

DEFAULT_CLASSES: tuple[PiiKind, ...] = ("email", "phone", "card", "iban", "national_id", "api_key")
"""What is looked for unless told otherwise: everything but IP addresses, which in agent
trajectories are mostly private infrastructure addresses (``10.0.0.1``), not a person's."""

PLACEHOLDERS: dict[PiiKind, str] = {
    "email": "<EMAIL>", "phone": "<PHONE>", "card": "<CARD>", "iban": "<IBAN>",
    "national_id": "<NATIONAL_ID>", "api_key": "<API_KEY>", "ip": "<IP>",
}
"""The typed placeholder that replaces a finding: letters between ``<`` and ``>``, no digit,
no ``@``, so no recognizer finds anything in it."""


@dataclass(frozen=True)
class Match:
    """One PII finding in a text."""

    kind: PiiKind
    """The class found."""
    start: int
    """Offset of the first character."""
    end: int
    """Offset just past the last character."""
    text: str
    """The matched characters."""


def pii_classes(names: Iterable[str]) -> tuple[PiiKind, ...]:
    """The classes named, in the order of :data:`ALL_CLASSES`; raises ``ValueError`` naming an unknown one."""
    wanted = set(names)
    unknown = sorted(wanted - set(ALL_CLASSES))
    if unknown:
        raise ValueError(f"unknown PII class {unknown[0]!r} (known: {', '.join(ALL_CLASSES)})")
    return tuple(c for c in ALL_CLASSES if c in wanted)
