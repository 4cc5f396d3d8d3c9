"""Machine-owned sections between HTML-comment markers.

coord rewrites only the text between ``<!-- coord:NAME:begin -->`` and
``<!-- coord:NAME:end -->``; every byte outside stays as the person wrote it.
"""

from __future__ import annotations

from coordinator.core.errors import CoordError


class MarkerError(CoordError):
    """Markers are missing their partner, nested or repeated; coord will not guess."""


def begin_marker(name: str) -> str:
    return f"<!-- coord:{name}:begin -->"


def end_marker(name: str) -> str:
    return f"<!-- coord:{name}:end -->"


def replace_block(text: str, name: str, body: str, *, file: str = "") -> str:
    """Return ``text`` with block ``name`` set to ``body`` (appended at the end when absent)."""
    begin, end = begin_marker(name), end_marker(name)
    n_begin, n_end = text.count(begin), text.count(end)
    where = f"{file}: " if file else ""
    if n_begin == 0 and n_end == 0:
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return f"{text}{sep}{begin}\n{body.rstrip()}\n{end}\n"
    if n_begin != 1 or n_end != 1:
        raise MarkerError(f"{where}expected one {begin} and one {end}, found {n_begin} and {n_end}; "
                          "fix the markers by hand (coord left the file unchanged)")
    start = text.index(begin)
    stop = text.index(end)
    if stop < start:
        line = text.count("\n", 0, stop) + 1
        raise MarkerError(f"{where}line {line}: {end} comes before {begin}; coord left the file unchanged")
    head = text[: start + len(begin)]
    tail = text[stop:]
    return f"{head}\n{body.rstrip()}\n{tail}"


def extract_block(text: str, name: str) -> str | None:
    """The current body of block ``name`` or None when absent."""
    begin, end = begin_marker(name), end_marker(name)
    if text.count(begin) != 1 or text.count(end) != 1:
        return None
    start = text.index(begin) + len(begin)
    stop = text.index(end)
    return text[start:stop].strip("\n") if stop > start else None
