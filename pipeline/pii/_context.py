"""What the words right before a number say about it."""

from __future__ import annotations

import re

NEGATIVE_CONTEXT_RE = re.compile(
    r"(?:\b(?:isbn|issn|doi|order|invoice|serial|sku|version|ticket|ref|iban|account|acct"
    r"|tracking|build|release|case)|#)"
    r"[\s:#.\-]*(?:no\.?|number|id)?[\s:#.\-]*$",
    re.IGNORECASE,
)
"""Words that make the number right after them an identifier, not a phone or a card
(search the text before the number; ``$`` anchors at the number)."""
