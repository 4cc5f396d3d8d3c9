"""Split a board into coord's marked sections and the person's text around them, and splice them back.

A section is the text between a line ``<!-- coord:NAME:begin -->`` and a line
``<!-- coord:NAME:end -->``. Splicing replaces section bodies only, so every
byte outside a section comes back exactly as it was read.
"""

from __future__ import annotations

from dataclasses import dataclass

from task_boards.markers import MarkerError, begin_marker, end_marker

_PREFIX = "<!-- coord:"


@dataclass(frozen=True)
class Section:
    """Where one section's body lies in a text (character offsets, 0-based line of the begin marker)."""

    name: str
    start: int
    """Offset of the first character of the body (just after the begin marker's newline)."""
    stop: int
    """Offset of the end marker line."""
    line: int


def _marker_name(line: str) -> tuple[str, str] | None:
    s = line.strip()
    if not (s.startswith(_PREFIX) and s.endswith("-->")):
        return None
    inner = s[len(_PREFIX):-3].strip()
    name, _, kind = inner.rpartition(":")
    if kind in ("begin", "end") and name and " " not in name:
        return name, kind
    return None


def sections(text: str, *, file: str = "") -> dict[str, Section]:
    """Every section of ``text`` by name; :class:`MarkerError` when markers are unpaired, nested or repeated."""
    where = f"{file}:" if file else "line "
    found: dict[str, Section] = {}
    open_name: str | None = None
    open_at, open_line = 0, 0
    pos = text.find(_PREFIX)
    while pos != -1:  # only lines holding a marker are looked at: boards are long, markers few
        line_start = text.rfind("\n", 0, pos) + 1
        line_end = text.find("\n", pos)
        line_end = len(text) if line_end == -1 else line_end + 1
        marker = _marker_name(text[line_start:line_end])
        if marker is not None:
            name, kind = marker
            n = text.count("\n", 0, line_start)
            if kind == "begin":
                if open_name is not None:
                    raise MarkerError(f"{where}{n + 1}: {begin_marker(name)} inside section {open_name!r}; "
                                      "fix the markers by hand (coord left the file unchanged)")
                if name in found:
                    raise MarkerError(f"{where}{n + 1}: section {name!r} appears twice; "
                                      "fix the markers by hand (coord left the file unchanged)")
                open_name, open_at, open_line = name, line_end, n
            else:
                if open_name != name:
                    raise MarkerError(f"{where}{n + 1}: {end_marker(name)} without its begin marker; "
                                      "fix the markers by hand (coord left the file unchanged)")
                found[name] = Section(name, open_at, line_start, open_line)
                open_name = None
        pos = text.find(_PREFIX, line_end)
    if open_name is not None:
        raise MarkerError(f"{where}{open_line + 1}: {begin_marker(open_name)} has no end marker; "
                          "fix the markers by hand (coord left the file unchanged)")
    return found


def bodies(text: str, *, file: str = "") -> dict[str, str]:
    """Section name → body text (exact bytes, trailing newline included)."""
    return {name: text[s.start:s.stop] for name, s in sections(text, file=file).items()}


def splice(text: str, new_bodies: dict[str, str], *, file: str = "") -> str:
    """``text`` with the named section bodies replaced; missing sections are appended at the end."""
    spans = sections(text, file=file)
    out: list[str] = []
    pos = 0
    for s in sorted(spans.values(), key=lambda s: s.start):
        if s.name in new_bodies:
            out.append(text[pos:s.start])
            out.append(new_bodies[s.name])
            pos = s.stop
    out.append(text[pos:])
    result = "".join(out)
    missing = [n for n in new_bodies if n not in spans]
    for name in missing:
        sep = "" if not result or result.endswith("\n\n") else ("\n" if result.endswith("\n") else "\n\n")
        body = new_bodies[name]
        if body and not body.endswith("\n"):
            body += "\n"
        result += f"{sep}{begin_marker(name)}\n{body}{end_marker(name)}\n"
    return result


def section_of_line(spans: dict[str, Section], text: str, line: int) -> str | None:
    """Name of the section whose body holds 0-based ``line``, if any."""
    for s in spans.values():
        first = text.count("\n", 0, s.start)
        last = text.count("\n", 0, s.stop)
        if first <= line < last:
            return s.name
    return None
