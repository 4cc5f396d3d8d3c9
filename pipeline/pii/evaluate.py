"""Scoring a PII detector against a labelled set: precision and recall per class.

The labelled set is JSONL, one text per line::

    {"id": "pii-004", "text": "…", "note": "what it tests",
     "pii": [{"class": "email", "start": 10, "end": 28, "text": "maria@example.com"}]}

``pii`` lists every span a perfect detector would report (``text`` repeats
``text[start:end]`` so a reader can check it); a line with ``"pii": []`` is a hard
negative. A finding counts as a true positive only when class, start and end all equal
a labelled span's: half an address scrubbed is a miss and a false positive.
Labelled spans of a class the detector was not asked for are neither found nor missed,
but a finding on them still counts against the class it was reported as (an IP address
reported as a phone number is a false phone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from pipeline.pii._model import ALL_CLASSES, Match, PiiKind, pii_classes


@dataclass(frozen=True)
class LabelledSpan:
    """One piece of PII a perfect detector reports."""

    kind: PiiKind
    """Its class."""
    start: int
    """Offset of the first character."""
    end: int
    """Offset just past the last character."""


@dataclass(frozen=True)
class LabelledText:
    """One text of the labelled set."""

    id: str
    """Stable name, for reports."""
    text: str
    """The text as an agent trajectory or a log would hold it."""
    spans: tuple[LabelledSpan, ...]
    """Every piece of PII in it (empty for a hard negative)."""
    note: str = ""
    """What the text tests."""


@dataclass
class ClassScore:
    """Counts for one class."""

    tp: int = 0
    """Findings equal to a labelled span."""
    fp: int = 0
    """Findings that are not."""
    fn: int = 0
    """Labelled spans nobody found."""

    @property
    def precision(self) -> float:
        """tp / (tp + fp); 1.0 when nothing was reported."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn); 1.0 when nothing was labelled."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass(frozen=True)
class Error:
    """A false positive or a false negative, for the report."""

    id: str
    """The text's id."""
    kind: PiiKind
    """The class reported (false positive) or labelled (false negative)."""
    found: bool
    """True for a false positive, False for a miss."""
    value: str
    """The characters involved."""


@dataclass
class Evaluation:
    """A detector's scores on a labelled set."""

    scores: dict[PiiKind, ClassScore]
    """Per class asked for, in :data:`ALL_CLASSES` order."""
    errors: list[Error] = field(default_factory=list)
    """Every false positive and false negative."""
    texts: int = 0
    """Texts scored."""


class LabelledSetError(ValueError):
    """The labelled set file is malformed (message names the line)."""


def load_labelled(path: Path) -> list[LabelledText]:
    """Read a labelled set, checking every span against its text."""
    records: list[LabelledText] = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            raw = orjson.loads(line)
            spans = []
            for item in raw["pii"]:
                kind = pii_classes([item["class"]])[0]
                start, end = int(item["start"]), int(item["end"])
                if raw["text"][start:end] != item["text"]:
                    raise LabelledSetError(f"{where}: span {start}:{end} is {raw['text'][start:end]!r}, "
                                           f"labelled {item['text']!r}")
                spans.append(LabelledSpan(kind, start, end))
            records.append(LabelledText(str(raw["id"]), str(raw["text"]), tuple(spans),
                                        str(raw.get("note", ""))))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            if isinstance(e, LabelledSetError):
                raise
            raise LabelledSetError(f"{where}: {e}") from e
    return records


def evaluate(records: Sequence[LabelledText], detect: Callable[[str, tuple[PiiKind, ...]], list[Match]],
             classes: Iterable[str] = ALL_CLASSES) -> Evaluation:
    """Run ``detect(text, classes)`` on every record and count per class."""
    asked = pii_classes(classes)
    result = Evaluation({kind: ClassScore() for kind in asked}, texts=len(records))
    for record in records:
        gold = {(s.kind, s.start, s.end) for s in record.spans if s.kind in asked}
        found = {(m.kind, m.start, m.end) for m in detect(record.text, asked)}
        for kind, start, end in sorted(found, key=lambda f: f[1]):
            if (kind, start, end) in gold:
                result.scores[kind].tp += 1
            else:
                result.scores[kind].fp += 1
                result.errors.append(Error(record.id, kind, True, record.text[start:end]))
        for kind, start, end in sorted(gold - found, key=lambda g: g[1]):
            result.scores[kind].fn += 1
            result.errors.append(Error(record.id, kind, False, record.text[start:end]))
    return result
