"""Three-way merge of a board: last rendered (base), the current file (theirs), the new render (ours).

Outside coord's sections the current file always wins, byte for byte. Inside
a section: if the person did not touch it, the new render replaces it; if coord
has nothing new, the person's version stays; if both changed it, their line
changes are merged when they touch different lines, and otherwise the merge is
impossible and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

from task_boards.markers import MarkerError
from task_boards.sections import bodies, splice

Hunk = tuple[int, int, list[str]]
"""Base lines [start, stop) replaced by these lines."""


def _hunks(base: list[str], other: list[str]) -> list[Hunk]:
    sm = SequenceMatcher(None, base, other, autojunk=False)
    return [(i1, i2, other[j1:j2]) for tag, i1, i2, j1, j2 in sm.get_opcodes() if tag != "equal"]


def _apply(base: list[str], start: int, stop: int, hunks: list[Hunk]) -> list[str]:
    out, pos = [], start
    for h0, h1, lines in hunks:
        out += base[pos:h0] + lines
        pos = h1
    return out + base[pos:stop]


def merge3(base: str, theirs: str, ours: str) -> str | None:
    """Line-level three-way merge; None when both sides changed the same lines differently."""
    b, t, o = (x.splitlines(keepends=True) for x in (base, theirs, ours))
    tagged = sorted([(h, 0) for h in _hunks(b, t)] + [(h, 1) for h in _hunks(b, o)],
                    key=lambda x: (x[0][0], x[0][1]))
    out: list[str] = []
    pos, i = 0, 0
    while i < len(tagged):
        (g0, g1, _), _side = tagged[i]
        group = [tagged[i]]
        i += 1
        # hunks touching the same base lines (or inserting at the same point) form one group
        while i < len(tagged):
            (h0, h1, _), _s = tagged[i]
            if h0 < g1 or (h0 == g1 and (h0 == h1 or any(x[0][0] == x[0][1] == g1 for x in group))):
                g1 = max(g1, h1)
                group.append(tagged[i])
                i += 1
            else:
                break
        out += b[pos:g0]
        sides = {s for _, s in group}
        results = [_apply(b, g0, g1, [h for h, s in group if s == side]) for side in (0, 1)]
        if len(sides) == 2 and results[0] != results[1]:
            return None
        out += results[0] if 0 in sides else results[1]
        pos = g1
    out += b[pos:]
    return "".join(out)


def missing_sections(base: dict[str, str], current: dict[str, str]) -> list[str]:
    """Sections coord last rendered that the current file no longer has."""
    return [name for name in base if name not in current]


@dataclass
class BoardMerge:
    """Outcome of merging one board."""

    text: str | None
    """What the file should hold now (None: merge impossible, write nothing)."""
    base: str | None
    """What to remember as coord's last render."""
    conflict: str | None = None


def merge_board(base: str | None, theirs: str, fresh: str, *, file: str = "") -> BoardMerge:
    """Merge a fresh render into the current file, keeping the person's edits."""
    try:
        new = bodies(fresh, file=file)
        current = bodies(theirs, file=file)
        old = bodies(base, file=file) if base is not None else dict(current)
    except MarkerError as e:
        return BoardMerge(None, None, str(e))
    missing = missing_sections(old, current)
    if missing:
        # a deleted section and a half-written save look the same: never guess, keep the file
        return BoardMerge(None, None, f"{file}: coord's section(s) {', '.join(missing)} are missing "
                          "(removed, or the file was read mid-save); coord left the file unchanged — "
                          "restore the markers to let coord write it again")
    merged: dict[str, str] = {}
    for name, body in new.items():
        mine, before = current.get(name), old.get(name)
        if mine is None or mine == before or before is None:
            merged[name] = body
        elif body == before:
            merged[name] = mine
        else:
            both = merge3(before, mine, body)
            if both is None:
                return BoardMerge(None, None, f"{file}: the person's edits in section {name!r} and coord's "
                                  "new render change the same lines; coord left the file unchanged "
                                  "(run `coord board sync` to apply the edits, or undo them)")
            merged[name] = both
    return BoardMerge(splice(theirs, merged, file=file), splice(theirs, new, file=file))
