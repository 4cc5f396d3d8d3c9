"""Read a role board with markdown-it-py: task-list items, their sub-items, gate approvals.

Only the ``tasks`` and ``gates`` sections are read; every item is located by
its markdown tokens (list items, paragraphs, inline HTML comments), and the
``<!-- coord:task id=... -->`` marker ties a line to its task whatever the
person did to its position or title.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

from task_boards.markers import MarkerError
from task_boards.model import FIELDS, BoardGate, BoardProblem, BoardTask, ParsedBoard
from task_boards.sections import sections

# Block structure is all a board needs; inline parsing (emphasis, links) would only cost time.
# Inside coord's sections there are no setext headings, tables, quotes, indented code or link
# references; leaving those rules out roughly halves the parse time of a long board.
_MD = MarkdownIt("commonmark").disable(["inline", "lheading", "blockquote", "code", "reference", "table"],
                                       ignoreInvalid=True)
# attributes of coord's own HTML-comment markers (the markdown structure itself comes from tokens)
_COMMENT = re.compile(r"<!--.*?-->")
_TASK_MARK = re.compile(r"<!--\s*coord:task\s+id=(\S+?)\s*-->")
_GATE_MARK = re.compile(r"<!--\s*coord:gate\s+id=(\S+?)\s*-->")
_BOARD_MARK = re.compile(r"<!--\s*coord:board\s+role=(\S+)\s+run=(\S+?)\s*-->")


@dataclass
class _Node:
    """A block of the token stream with its children (lighter than markdown-it's _Node)."""

    type: str
    map: list[int] | None
    content: str = ""
    children: list[_Node] = field(default_factory=list)


def _tree(tokens: list[Token]) -> _Node:
    root = _Node("root", None)
    stack = [root]
    for tok in tokens:
        if tok.nesting == 1:
            node = _Node(tok.type.removesuffix("_open"), tok.map)
            stack[-1].children.append(node)
            stack.append(node)
        elif tok.nesting == -1:
            stack.pop()
        else:
            stack[-1].children.append(_Node(tok.type, tok.map, tok.content))
    return root


def _shift(node: _Node, offset: int) -> None:
    """Move a parsed section's line numbers to where the section sits in the whole board."""
    if node.map is not None:
        node.map = [node.map[0] + offset, node.map[1] + offset]
    for child in node.children:
        _shift(child, offset)


def _checkbox(content: str) -> tuple[bool | None, str, bool]:
    """(checked, rest, has_box): a GFM task box, or a garbled attempt at one."""
    if content[:4] in ("[ ] ", "[x] ", "[X] ") or content in ("[ ]", "[x]", "[X]"):
        return content[1] != " ", content[4:], True
    head = content[:6]
    if head.startswith("[") and "]" in head:
        return None, content[content.index("]") + 1:].lstrip(), True
    return False, content, False


def _inline(node: _Node) -> tuple[str, list[str], int]:
    """Text of a list item's first paragraph, the coord markers in it and its 1-based line."""
    para = next((c for c in node.children if c.type == "paragraph"), None)
    line = (node.map[0] + 1) if node.map else 0
    if para is None or not para.children:
        return "", [], line
    content = para.children[0].content or ""
    html = [m.group(0) for m in _COMMENT.finditer(content)]
    return content, html, line


def _strip_marks(text: str) -> str:
    text = _TASK_MARK.sub("", _GATE_MARK.sub("", text)).strip()
    return text


def _task(item: _Node, file: str) -> tuple[BoardTask | None, list[BoardProblem]]:
    content, html, line = _inline(item)
    marks = [m.group(1) for h in html if (m := _TASK_MARK.search(h))]
    checked, rest, has_box = _checkbox(content)
    problems: list[BoardProblem] = []
    if len(marks) > 1:
        problems.append(BoardProblem(file, line, "one line carries several task markers: " + ", ".join(marks)))
    tid = marks[0] if marks else None
    if not has_box:
        if tid is None:
            problems.append(BoardProblem(file, line, "text inside coord's tasks section that is neither a task, "
                                         "a note under a task nor a new task (`- [ ] title`); move it outside "
                                         "the section or make it a sub-item of a task"))
            return None, problems
        problems.append(BoardProblem(file, line, f"task {tid!r} lost its checkbox; write `- [ ]` or `- [x]`"))
        checked = None
    elif checked is None:
        problems.append(BoardProblem(file, line, f"broken checkbox {content[:content.index(']') + 1]!r}"
                                     + (f" on task {tid!r}" if tid else "") + "; write `[ ]` or `[x]`"))
    task = BoardTask(tid, checked, _strip_marks(rest), line)
    for sub in (c for c in item.children if c.type == "bullet_list"):
        for li in sub.children:
            text, _, sub_line = _inline(li)
            text = text.strip()
            if not text:
                continue
            key, sep, value = text.partition(":")
            key = key.strip().strip("*").strip().lower()
            if sep and key == "reported" and key in task.fields:  # one line per reported note: keep them all
                task.fields[key] += "\n" + value.strip()
            elif sep and key in FIELDS and key != "note":
                task.fields[key] = value.strip()
                task.field_lines[key] = sub_line
            elif not sep and text.lower().rstrip(".") in ("defer", "deferred"):
                task.fields["defer"] = ""
            else:
                task.notes.append(value.strip() if sep and key == "note" else text)
                task.note_lines.append(sub_line)
    if "deferred" in task.fields:
        task.fields["defer"] = task.fields.pop("deferred")
    return task, problems


def _gate(item: _Node, file: str) -> tuple[BoardGate | None, list[BoardProblem]]:
    content, html, line = _inline(item)
    marks = [m.group(1) for h in html if (m := _GATE_MARK.search(h))]
    if not marks:
        return None, []
    checked, _, has_box = _checkbox(content)
    if has_box and checked is None:
        return BoardGate(marks[0], None, line), [BoardProblem(
            file, line, f"broken checkbox on gate {marks[0]!r}; write `[ ]` or `[x]`")]
    return BoardGate(marks[0], checked if has_box else None, line), []


@dataclass(frozen=True)
class _Unit:
    """One top-level block of a tasks section: a list item (a task, or a person's new task) or any other
    block. Lines of what it holds count from the unit's first line (1 = that line), so a unit parsed once
    serves every later text where the same lines sit elsewhere."""

    start: int
    """0-based line of its first line within the section body."""
    bullet: bool
    """Its first line is a non-empty ``-``/``*``/``+`` bullet in column 0: it starts a top-level list item
    whatever open blocks precede it (other than a code fence or HTML block)."""
    task: BoardTask | None
    problems: tuple[BoardProblem, ...]

    def moved(self, by: int) -> _Unit:
        return _Unit(self.start + by, self.bullet, self.task, self.problems)


_BULLET = re.compile(r"[-*+][ \t]+\S")
_BREAK = re.compile(r"[ ]{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_OPENERS = ("```", "~~~", "<")
"""Lines that can open a block running past the next bullet (a code fence, an HTML block)."""


def _is_bullet(line: str) -> bool:
    return _BULLET.match(line) is not None and _BREAK.fullmatch(line.rstrip("\n")) is None


def _units(body: str, lines: list[str], file: str, first: int = 0) -> list[_Unit]:
    """The units of ``body``, whose first line is line ``first`` of the section (``lines``: the section's)."""
    out = []
    for node in _tree(_MD.parse(body)).children:
        if not node.map:
            continue
        items = node.children if node.type == "bullet_list" else [node]
        for item in items:
            if not item.map:
                continue
            at = item.map[0]
            _shift(item, -at)
            problems: list[BoardProblem] = []
            task = None
            if node.type == "bullet_list":
                task, problems = _task(item, file)
            elif node.type not in ("heading", "html_block", "hr"):
                problems = [BoardProblem(
                    file, 1, "text inside coord's tasks section that is neither a task, a note under "
                    "a task nor a new task (`- [ ] title`); move it outside the section")]
            out.append(_Unit(first + at, node.type == "bullet_list" and _is_bullet(lines[first + at]), task,
                             tuple(problems)))
    return out


_RECENT: dict[str, tuple[list[str], list[_Unit]]] = {}
"""The last tasks section parsed for each board file: its lines and units (the next parse of that
board re-parses only the units a person's edit touched)."""
_RECENT_FILES = 64
_RECENT_LOCK = threading.Lock()


def _section_units(body: str, file: str) -> list[_Unit]:
    """The section's units, re-parsing only the top-level items between the first and last changed line
    since the last parse of ``file``; the same units a whole parse gives (see :func:`_reparse_span`)."""
    lines = body.splitlines(keepends=True)
    with _RECENT_LOCK:
        recent = _RECENT.get(file)
    span = None if recent is None or recent[0] == lines else _reparse_span(recent, lines)
    if recent is not None and recent[0] == lines:
        units = recent[1]
    elif recent is None or span is None:
        units = _units(body, lines, file)
    else:
        keep_before, reparse_from, keep_after, shift = span
        old_units = recent[1]
        stop = old_units[keep_after].start + shift if keep_after < len(old_units) else len(lines)
        units = [*old_units[:keep_before], *_units("".join(lines[reparse_from:stop]), lines, file, reparse_from),
                 *(u.moved(shift) for u in old_units[keep_after:])]
    with _RECENT_LOCK:
        _RECENT.pop(file, None)
        if len(_RECENT) >= _RECENT_FILES:
            del _RECENT[next(iter(_RECENT))]
        _RECENT[file] = (lines, units)
    return units


def _reparse_span(recent: tuple[list[str], list[_Unit]], lines: list[str]) -> tuple[int, int, int, int] | None:
    """Which units of the last parse still stand: ``(keep_before, reparse_from, keep_after, shift)`` — units
    ``[:keep_before]`` unchanged, lines from ``reparse_from`` up to unit ``keep_after`` (moved by ``shift``
    lines) parsed again, the units from ``keep_after`` on moved by ``shift``; None to parse it all.

    Block parsing reads a section line by line: up to a line every open block is the same as it was the last
    time. The re-parsed lines start at a top-level bullet in column 0 and end before one, and hold no code
    fence or HTML block that could run past them — so each bullet starts a top-level item in either parse."""
    old_lines, units = recent
    if not units:
        return None
    n_old, n_new = len(old_lines), len(lines)
    head = 0
    limit = min(n_old, n_new)
    while head < limit and old_lines[head] == lines[head]:
        head += 1
    if head == n_old == n_new:
        return None  # the same lines: the caller keeps every unit
    tail = 0
    while tail < limit - head and old_lines[n_old - 1 - tail] == lines[n_new - 1 - tail]:
        tail += 1
    shift = n_new - n_old
    # the last unit starting at or before the first changed line, on a bullet (the line may be the changed one)
    i = len(units) - 1
    while i >= 0 and (units[i].start > head or not units[i].bullet):
        i -= 1
    while i >= 0 and units[i].start == head and (head == n_new or not _is_bullet(lines[head])):
        i -= 1
        while i >= 0 and not units[i].bullet:
            i -= 1
    if i < 0:
        return None
    # the first unit wholly in the unchanged tail, on a bullet
    j = next((k for k in range(i + 1, len(units)) if units[k].start >= n_old - tail and units[k].bullet),
             len(units))
    reparse_from = units[i].start
    stop = units[j].start + shift if j < len(units) else n_new
    if any(line.lstrip().startswith(_OPENERS) for line in lines[reparse_from:stop]):
        return None
    return i, reparse_from, j, shift


def _placed(unit: _Unit, offset: int, file: str) -> tuple[BoardTask | None, list[BoardProblem]]:
    """A unit's task and problems with lines of the whole board (``offset``: lines before the unit)."""
    problems = [BoardProblem(file, p.line + offset, p.message) for p in unit.problems]
    t = unit.task
    if t is None:
        return None, problems
    return BoardTask(t.id, t.checked, t.title, t.line + offset, dict(t.fields),
                     {k: v + offset for k, v in t.field_lines.items()}, list(t.notes),
                     [n + offset for n in t.note_lines]), problems


def _parse(text: str, file: str) -> ParsedBoard:
    board = ParsedBoard(file, None, None)
    try:
        spans = sections(text, file=file)
    except MarkerError as e:
        board.problems.append(BoardProblem(file, 0, str(e)))
        return board
    m = _BOARD_MARK.search(text)
    if m:
        board.role, board.run_id = m.group(1), m.group(2)
    # Only coord's two sections are parsed: people's own text around them is none of the parser's business.
    span = spans.get("tasks")
    if span is not None:
        offset = text.count("\n", 0, span.start)
        for unit in _section_units(text[span.start:span.stop], file):
            task, problems = _placed(unit, offset + unit.start, file)
            board.problems += problems
            if task is not None:
                board.tasks.append(task)
    span = spans.get("gates")
    if span is not None:
        offset = text.count("\n", 0, span.start)
        for node in _tree(_MD.parse(text[span.start:span.stop])).children:
            if node.type != "bullet_list":
                continue
            _shift(node, offset)
            for item in node.children:
                gate, problems = _gate(item, file)
                board.problems += problems
                if gate is not None:
                    board.gates.append(gate)
    return board


@lru_cache(maxsize=64)
def _cached(digest: str, text: str, file: str) -> ParsedBoard:
    return _parse(text, file)


def parse_board(text: str, file: str) -> ParsedBoard:
    """Parse a role board (results are cached by content, so unchanged boards cost nothing)."""
    return _cached(hashlib.sha256(text.encode("utf-8")).hexdigest(), text, file)
