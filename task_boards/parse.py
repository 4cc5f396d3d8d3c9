"""Read a role board with markdown-it-py: task-list items, their sub-items, gate approvals.

Only the ``tasks`` and ``gates`` sections are read; every item is located by
its markdown tokens (list items, paragraphs, inline HTML comments), and the
``<!-- coord:task id=... -->`` marker ties a line to its task whatever the
person did to its position or title.
"""

from __future__ import annotations

import hashlib
import re
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
    nodes: list[tuple[str, _Node]] = []
    for name in ("tasks", "gates"):
        span = spans.get(name)
        if span is None:
            continue
        offset = text.count("\n", 0, span.start)
        for node in _tree(_MD.parse(text[span.start:span.stop])).children:
            _shift(node, offset)
            nodes.append((name, node))
    for name, node in nodes:
        if not node.map:
            continue
        first = node.map[0]
        if name == "tasks":
            if node.type == "bullet_list":
                for item in node.children:
                    task, problems = _task(item, file)
                    board.problems += problems
                    if task is not None:
                        board.tasks.append(task)
            elif node.type not in ("heading", "html_block", "hr"):
                board.problems.append(BoardProblem(
                    file, first + 1, "text inside coord's tasks section that is neither a task, a note under "
                    "a task nor a new task (`- [ ] title`); move it outside the section"))
        elif name == "gates" and node.type == "bullet_list":
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
