"""Hand edits and the rerun skip: an edit is seen even when the size is the same and the mtime was put
back, and an edited output that a rerun replaces is named (an event, a console line, a board note)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.events import read_events
from coordinator.core.io import atomic_write_text
from coordinator.core.step import StepContext, StepResult
from coordinator.core.step_run import WRITING_SUFFIX, StepRun, manifest_path
from tests.coordinator.steps_for_tests import write_plan


def _edit_keeping_size_and_mtime(path: Path, text: str) -> None:
    """What a careful hand edit (or a restore from a backup) can look like: same size, mtime put back."""
    st = path.stat()
    assert len(text.encode()) == st.st_size
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def _produce(ctx: StepContext, out: Path, text: str) -> StepResult:
    run = StepRun(ctx, "produce", {"text": text}, inputs=[], outputs=[out])
    if (cached := run.cached()) is not None:
        return cached
    atomic_write_text(out, text)
    run.record(out, rows=1)
    return run.finish({"chars": len(text)})


def _upper(ctx: StepContext, src: Path, out: Path) -> StepResult:
    run = StepRun(ctx, "upper", {}, inputs=[src], outputs=[out])
    if (cached := run.cached()) is not None:
        return cached
    atomic_write_text(out, src.read_text().upper())
    run.record(out, rows=1)
    return run.finish({})


def test_a_same_size_input_edit_with_its_mtime_put_back_is_seen_before_the_step_is_skipped(tmp_path):
    ctx = StepContext(workspace=tmp_path, code_version="v1")
    src, out = tmp_path / "data" / "src.txt", tmp_path / "data" / "out.txt"
    _produce(ctx, src, "hello world")
    assert not _upper(ctx, src, out).skipped
    assert _upper(ctx, src, out).skipped  # nothing changed: skipped

    _edit_keeping_size_and_mtime(src, "jello world")
    again = _upper(ctx, src, out)

    assert not again.skipped and out.read_text() == "JELLO WORLD"
    recorded = orjson.loads(manifest_path(out).read_bytes())["inputs"]["data/src.txt"]
    assert recorded == hashlib.sha256(b"jello world").hexdigest()  # the key names what the input holds
    assert _upper(ctx, src, out).skipped  # the new key holds: the next rerun skips


def test_a_same_size_output_edit_with_its_mtime_put_back_is_replaced_and_named(tmp_path):
    ctx = StepContext(workspace=tmp_path, code_version="v1")
    out = tmp_path / "data" / "out.txt"
    _produce(ctx, out, "hello world")
    _edit_keeping_size_and_mtime(out, "HELLO WORLD")

    again = _produce(ctx, out, "hello world")

    assert not again.skipped and out.read_text() == "hello world"
    assert again.replaced == ["data/out.txt"]
    assert any("replaced data/out.txt, which had been changed by hand" in n for n in again.notes)
    assert not out.with_name(f".out.txt{WRITING_SUFFIX}").exists()


def test_outputs_a_killed_run_left_unrecorded_are_not_taken_for_a_persons_edit(tmp_path):
    ctx = StepContext(workspace=tmp_path, code_version="v1")
    out = tmp_path / "data" / "out.txt"
    _produce(ctx, out, "hello world")
    # a run of the step that was killed after writing its output and before its manifest
    run = StepRun(ctx, "produce", {"text": "other text!"}, inputs=[], outputs=[out])
    assert run.cached() is None
    atomic_write_text(out, "other text!")

    again = _produce(ctx, out, "hello world")
    assert not again.skipped and again.replaced == [] and out.read_text() == "hello world"


PLAN = """name: edits
tasks:
  - {id: make, title: Make, role: execution, run: t_write, with: {out: out/a.txt, text: "hello world"}}
"""


def test_a_run_that_replaces_an_edited_output_logs_it_and_says_so_on_the_console_and_board(ws):
    path = write_plan(ws.root, PLAN)
    cli = CliRunner()
    first = cli.invoke(app, ["run", str(path), "-w", str(ws.root)], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    (ws.root / "out" / "a.txt").write_text("hello, edited by a person")

    second = cli.invoke(app, ["run", str(path), "-w", str(ws.root)], catch_exceptions=False)

    assert second.exit_code == 0, second.output
    assert (ws.root / "out" / "a.txt").read_text() == "hello world"
    assert "make replaced out/a.txt, which had been changed by hand" in second.output
    runs = [e["run"] for e in read_events(ws.events) if e["kind"] == "run_started"]
    replaced = [e for e in read_events(ws.events) if e["kind"] == "output_replaced"]
    assert [(e["run"], e["task"], e["path"]) for e in replaced] == [(runs[-1], "make", "out/a.txt")]
    board = (ws.boards / "CURSOR_TASKS.md").read_text()
    assert "reported: replaced out/a.txt, which had been changed by hand since coord wrote it" in board

    third = cli.invoke(app, ["run", str(path), "-w", str(ws.root)], catch_exceptions=False)
    assert third.exit_code == 0 and "changed by hand" not in third.output  # nothing edited: nothing said


def test_a_manifest_names_the_machine_that_wrote_the_output(tmp_path):
    import socket

    ctx = StepContext(workspace=tmp_path, code_version="v1")
    out = tmp_path / "data" / "a.txt"
    _produce(ctx, out, "hi")
    assert orjson.loads(manifest_path(out).read_bytes())["host"] == socket.gethostname() != ""
