"""A board parsed again after an edit re-reads only the items the edit touched, and reads exactly
what a parse of the whole board reads: tasks, fields, notes, problems and every line number.

The edits are drawn from what people do to boards (notes, ticks, new tasks, moved lines) and from
what breaks markdown structure (code fences, HTML blocks, rules, headings, other bullets, ordered
lists, lazy continuation lines, indentation changes, deleted markers).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from task_boards import parse
from task_boards.parse import _parse

FILE = "task_boards/R_TASKS.md"


def _board(n: int, rng: random.Random) -> list[str]:
    lines = ["# R board\n", "<!-- coord:board role=r run=run-1 -->\n", "\n", "Some text of the team's own.\n",
             "\n", "<!-- coord:tasks:begin -->\n", "## Tasks\n", "\n"]
    for i in range(n):
        box = rng.choice(["x", " "])
        lines.append(f"- [{box}] **t{i}** — Task {i} <!-- coord:task id=t{i} -->\n")
        lines += ["  - role: r\n", f"  - status: **{'done' if box == 'x' else 'pending'}**\n",
                  "  - kind: pipeline step `mod:fn`\n", f"  - needs: {'t' + str(i - 1) if i else '—'}\n"]
        if rng.random() < 0.3:
            lines.append(f"  - note: remember {i}\n")
        if rng.random() < 0.2:
            lines.append("\n")
    lines += ["<!-- coord:tasks:end -->\n", "\n", "<!-- coord:gates:begin -->\n",
              "- [ ] approve gate **qc** <!-- coord:gate id=qc -->\n", "<!-- coord:gates:end -->\n", "\n",
              "Footer of the team's own.\n"]
    return lines


EDIT_LINES = [
    "  - a note from a person\n", "  - note: with a key\n", "- [ ] A new task\n", "- [x] Done already\n",
    "- [?] garbled box\n", "\n", "\n\n", "loose paragraph at column 0\n", "    indented four\n",
    "```\n", "```python\n", "~~~\n", "<div>\n", "<!-- a comment of mine -->\n", "---\n", "- - -\n", "***\n",
    "## A heading\n", "* star bullet\n", "+ plus bullet\n", "1. ordered\n", "2) ordered\n", "-\n", "- \n",
    "  - defer\n", "  - role: s\n", "\t- tabbed\n", "   - three spaces\n", "      - deeper\n", "> quoted\n",
    "- [ ] **t3** — dup <!-- coord:task id=t3 -->\n", "- [x] x <!-- coord:task id=zz -->\n",
    "  - [ ] sub box\n", "text continuing lazily\n",
]


def _edit(lines: list[str], rng: random.Random, count: int) -> list[str]:
    out = list(lines)
    for _ in range(count):
        at = rng.randrange(len(out) + 1)
        kind = rng.random()
        if kind < 0.45:
            out.insert(at, rng.choice(EDIT_LINES))
        elif kind < 0.65 and at < len(out):
            del out[at]
        elif kind < 0.8 and at < len(out):
            out[at] = out[at].replace("[ ]", "[x]") if "[ ]" in out[at] else out[at].replace("[x]", "[ ]")
        elif kind < 0.9 and at < len(out):
            out[at] = rng.choice(EDIT_LINES)
        elif at + 1 < len(out):
            out[at], out[at + 1] = out[at + 1], out[at]
    return out


def _whole(text: str):
    parse._RECENT.clear()
    return _parse(text, FILE)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 25), edits=st.integers(1, 4), rounds=st.integers(1, 3))
def test_parsing_after_edits_reads_what_a_whole_parse_reads(seed, n, edits, rounds):
    rng = random.Random(seed)
    lines = _board(n, rng)
    parse._RECENT.clear()
    _parse("".join(lines), FILE)  # the last render, parsed: what the next parse starts from
    for _ in range(rounds):
        lines = _edit(lines, rng, edits)
        text = "".join(lines)
        incremental = _parse(text, FILE)
        assert incremental == _whole(text), text
        _parse(text, FILE)  # the whole parse reset the memory; later rounds start from this text


def test_a_note_under_one_task_reparses_that_task_only(monkeypatch):
    lines = _board(200, random.Random(1))
    parse._RECENT.clear()
    _parse("".join(lines), FILE)
    at = next(i for i, line in enumerate(lines) if "coord:task id=t120 " in line)
    lines.insert(at + 2, "  - please check the units\n")
    parsed: list[str] = []
    real = parse._MD.parse
    monkeypatch.setattr(parse._MD, "parse", lambda src, env=None: parsed.append(src) or real(src, env))
    board = _parse("".join(lines), FILE)
    tasks_parse = parsed[0]  # then the gates section
    assert tasks_parse.startswith("- [") and "coord:task id=t120 " in tasks_parse
    assert tasks_parse.count("coord:task id=") == 1
    t120 = next(t for t in board.tasks if t.id == "t120")
    assert t120.notes[-1] == "please check the units" and t120.note_lines[-1] == at + 3
    after = next(t for t in board.tasks if t.id == "t121")
    assert lines[after.line - 1].startswith("- [") and "id=t121 " in lines[after.line - 1]
    monkeypatch.undo()
    assert board == _whole("".join(lines))


@pytest.mark.parametrize("opener", ["```\n", "~~~\n", "<div>\n", "  <!-- mine\n"])
def test_a_fence_or_html_block_in_the_edit_makes_it_a_whole_parse(opener, monkeypatch):
    lines = _board(30, random.Random(2))
    parse._RECENT.clear()
    _parse("".join(lines), FILE)
    at = next(i for i, line in enumerate(lines) if "coord:task id=t10 " in line)
    lines.insert(at + 1, opener)  # it may run past the next bullet
    text = "".join(lines)
    parsed: list[str] = []
    real = parse._MD.parse
    monkeypatch.setattr(parse._MD, "parse", lambda src, env=None: parsed.append(src) or real(src, env))
    board = _parse(text, FILE)
    assert "coord:task id=t0 " in parsed[0] and "coord:task id=t29 " in parsed[0]  # the whole section
    monkeypatch.undo()
    assert board == _whole(text)
    if opener.startswith(("```", "~~~")):  # an unclosed fence swallows every task after it
        assert "t11" not in {t.id for t in board.tasks}


def test_removing_the_last_tasks_of_the_section_reads_as_a_whole_parse():
    lines = _board(12, random.Random(3))
    parse._RECENT.clear()
    _parse("".join(lines), FILE)
    end = lines.index("<!-- coord:tasks:end -->\n")
    last = max(i for i, line in enumerate(lines) if "coord:task id=" in line)
    del lines[last:end]  # the last task: the section now ends where it started
    text = "".join(lines)
    assert _parse(text, FILE) == _whole(text)
