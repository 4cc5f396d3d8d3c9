"""A board re-render reuses the text of every task whose record did not change, and gives the same board
as a render from scratch."""

from __future__ import annotations

from coordinator.core.run_store import load_run_plan
from coordinator.core.state import merge_records
from coordinator.engine.run_state import read_run_state
from roles.definitions import roles_for
from task_boards import render as render_module
from task_boards.render import render_all
from tests.task_boards.conftest import board, start


def _tasks_section(text: str) -> str:
    return text[text.index("<!-- coord:tasks:begin -->"):text.index("<!-- coord:tasks:end -->")]


def _fresh(ws, plan, roles, state) -> dict[str, str]:
    """Every role's tasks section rendered with no block kept from before."""
    render_module._blocks.clear()
    render_module._rendered.clear()
    render_all(ws, plan, roles, state)
    return {r.name: _tasks_section(board(ws, r.board_name).read_text()) for r in roles.values()}


def test_only_changed_tasks_are_rendered_again_and_the_board_is_the_same(ws, monkeypatch):
    first = start(ws)
    state = read_run_state(ws, first.run_id)[0]
    plan = load_run_plan(ws, first.run_id)
    roles = roles_for(ws, plan)
    render_all(ws, plan, roles, state)

    rendered: list[str] = []
    real = render_module.render

    def counting(name, **context):
        if name == "role_board_task.md.j2":
            rendered.append(context["t"]["id"])
        return real(name, **context)

    monkeypatch.setattr(render_module, "render", counting)
    changed = {**state, "tasks": merge_records(state["tasks"], {"write_docs": {
        "status": "failed", "error": "the docs were not written", "attempts": 2}})}
    render_all(ws, plan, roles, changed)
    assert rendered == ["write_docs"]  # the other records are the same objects: their text is reused
    reused = {r.name: _tasks_section(board(ws, r.board_name).read_text()) for r in roles.values()}
    assert "the docs were not written" in reused["execution"]
    assert reused == _fresh(ws, plan, roles, changed)


def test_a_link_appears_when_the_artifact_file_does_although_the_record_is_the_same(ws):
    first = start(ws)
    state = read_run_state(ws, first.run_id)[0]
    plan = load_run_plan(ws, first.run_id)
    roles = roles_for(ws, plan)
    with_artifact = {**state, "tasks": merge_records(state["tasks"], {"write_docs": {
        "status": "done", "artifacts": [{"path": "reports/docs.md", "sha256": "0" * 64, "bytes": 3, "rows": None}]}})}
    render_all(ws, plan, roles, with_artifact)
    execution = board(ws, roles["execution"].board_name)
    assert "`reports/docs.md`" in execution.read_text()  # not there yet: named, not linked
    (ws.root / "reports").mkdir(exist_ok=True)
    (ws.root / "reports" / "docs.md").write_text("ok\n")
    render_all(ws, plan, roles, with_artifact)  # the very same state object
    assert "[reports/docs.md](../reports/docs.md)" in execution.read_text()


def test_a_state_read_back_from_the_checkpoint_reuses_the_blocks_of_equal_records(ws, monkeypatch):
    first = start(ws)
    state = read_run_state(ws, first.run_id)[0]
    plan = load_run_plan(ws, first.run_id)
    roles = roles_for(ws, plan)
    render_all(ws, plan, roles, state)
    rendered: list[str] = []
    real = render_module.render
    monkeypatch.setattr(render_module, "render", lambda name, **c: (
        rendered.append(name) if name == "role_board_task.md.j2" else None, real(name, **c))[1])
    render_module._rendered.clear()  # the role stamps would skip the roles altogether
    render_all(ws, plan, roles, read_run_state(ws, first.run_id)[0])  # new objects, the same values
    assert rendered == []
