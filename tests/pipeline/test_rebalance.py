"""rebalance: per-agent difficulty resampling that keeps prompt variants together."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.core.errors import InputError, ParameterError
from coordinator.core.step import StepContext
from pipeline.rebalance import largest_remainder, plan_counts, rebalance

TARGET = {"easy": 0.30, "medium": 0.45, "hard": 0.25}


def rows_for(agent: str, counts: dict[str, int], variants: int = 3) -> list[dict[str, Any]]:
    rows = []
    for difficulty, n in counts.items():
        for i in range(n):
            base = f"{agent}-{difficulty}-{i:03d}"
            for v in range(variants):
                rows.append({
                    "id": f"{agent}<-{base}#{v}", "weight": 1.0 if i % 2 else 0.5,
                    "conversations": [{"from": "system", "value": f"variant {v}"},
                                      {"from": "human", "value": f"question about {base}?"},
                                      {"from": "gpt", "value": f"answer about {base}."}],
                    "target_agent": agent, "source_agent": agent, "base_id": base,
                    "category": "c", "difficulty": difficulty, "variant": v})
    return rows


def write_files(ws: Path, files: dict[str, list[dict[str, Any]]]) -> None:
    d = ws / "data/sft_scrubbed/unsloth"
    d.mkdir(parents=True, exist_ok=True)
    for agent, rows in files.items():
        (d / f"{agent}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def read(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def bases_by_difficulty(rows: list[dict[str, Any]]) -> Counter[str]:
    return Counter(d for _, d in {(r["base_id"], r["difficulty"]) for r in rows})


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    write_files(tmp_path, {"qa": rows_for("qa", {"easy": 10, "medium": 10, "hard": 10}),
                           "legal": rows_for("legal", {"easy": 6, "medium": 9, "hard": 5})})
    return tmp_path


def test_downsampling_matches_the_target_and_keeps_variants_together(ws: Path) -> None:
    result = rebalance(StepContext(ws))
    m = result.metrics
    out = ws / "data/sft_final/unsloth"
    qa = read(out / "qa.jsonl")
    # largest N with N·share ≤ available is 22 → 6.6 / 9.9 / 5.5 → 7 / 10 / 5
    assert bases_by_difficulty(qa) == {"easy": 7, "medium": 10, "hard": 5}
    assert all(n == 3 for n in Counter(r["base_id"] for r in qa).values())
    source = {orjson.dumps(r) for r in rows_for("qa", {"easy": 10, "medium": 10, "hard": 10})}
    assert all(orjson.dumps(r) in source for r in qa)  # rows are kept verbatim
    legal = read(out / "legal.jsonl")
    assert legal == rows_for("legal", {"easy": 6, "medium": 9, "hard": 5})  # already on target
    assert (m["rows_before"], m["rows_after"]) == (150, 126)
    assert (m["bases_before"], m["bases_after"]) == (50, 42)
    assert m["max_deviation_before"] == pytest.approx(0.45 - 1 / 3)
    assert m["max_deviation_after"] == pytest.approx(0.25 - 5 / 22)
    assert m["frac_after_medium"] == pytest.approx(19 / 42)
    assert m["frac_before_easy"] == pytest.approx(16 / 50)


def test_openai_files_are_regenerated_from_the_kept_rows(ws: Path) -> None:
    m = rebalance(StepContext(ws)).metrics
    total = 0
    for agent in ("qa", "legal"):
        unsloth = read(ws / f"data/sft_final/unsloth/{agent}.jsonl")
        openai = read(ws / f"data/sft_final/openai/{agent}.jsonl")
        assert all(set(r) == {"messages"} for r in openai)
        kept_questions = {r["conversations"][1]["value"] for r in unsloth}
        assert {r["messages"][1]["content"] for r in openai} <= kept_questions
        assert 0 < len(openai) <= len(unsloth)
        total += len(openai)
    assert m["openai_rows"] == total


def test_upsampling_repeats_whole_base_examples_with_new_ids(ws: Path) -> None:
    m = rebalance(StepContext(ws), mode="up", out_dir="data/up").metrics
    qa = read(ws / "data/up/unsloth/qa.jsonl")
    # smallest N with N·share ≥ available is 40 → 12 / 18 / 10 base examples
    counts = Counter(r["difficulty"] for r in qa if r["variant"] == 0)
    assert counts == {"easy": 12, "medium": 18, "hard": 10}
    assert len({r["id"] for r in qa}) == len(qa) == 120
    copies = [r for r in qa if "~up" in r["id"]]
    assert len(copies) == 10 * 3
    assert all(sum(1 for r in copies if r["base_id"] == b) % 3 == 0 for b in {r["base_id"] for r in copies})
    assert m["max_deviation_after"] == pytest.approx(0.0)


def test_selection_is_deterministic_and_follows_the_seed(ws: Path) -> None:
    ctx = StepContext(ws)
    rebalance(ctx, out_dir="data/a", report="reports/a.md")
    rebalance(ctx, out_dir="data/b", report="reports/b.md")
    rebalance(ctx, out_dir="data/c", report="reports/c.md", seed=7)
    for layout in ("unsloth", "openai"):
        a = (ws / f"data/a/{layout}/qa.jsonl").read_bytes()
        assert (ws / f"data/b/{layout}/qa.jsonl").read_bytes() == a
    kept = {r["base_id"] for r in read(ws / "data/a/unsloth/qa.jsonl")}
    assert kept != {r["base_id"] for r in read(ws / "data/c/unsloth/qa.jsonl")}
    assert rebalance(ctx, out_dir="data/a", report="reports/a.md").skipped


def test_report_has_a_before_after_table(ws: Path) -> None:
    rebalance(StepContext(ws))
    report = (ws / "reports/rebalance.md").read_text()
    assert "| qa | easy | 0.30 | 10 | 0.3333 | 7 | 0.3182 |" in report
    assert "| legal | hard | 0.25 | 5 | 0.2500 | 5 | 0.2500 |" in report


def test_missing_and_unknown_difficulties(tmp_path: Path) -> None:
    rows = rows_for("qa", {"easy": 4, "medium": 6, "expert": 2})
    write_files(tmp_path, {"qa": rows})
    result = rebalance(StepContext(tmp_path))
    qa = read(tmp_path / "data/sft_final/unsloth/qa.jsonl")
    # no hard examples: the target is renormalized to easy 0.4 / medium 0.6
    assert bases_by_difficulty(qa) == {"easy": 4, "medium": 6}
    assert result.metrics["rows_outside_target"] == 6
    assert any("no hard examples" in n for n in result.notes)


def test_bad_rows_are_rejected_not_written(tmp_path: Path) -> None:
    write_files(tmp_path, {"qa": rows_for("qa", {"easy": 3, "medium": 4, "hard": 2})})
    path = tmp_path / "data/sft_scrubbed/unsloth/qa.jsonl"
    path.write_bytes(path.read_bytes() + b"{oops\n" + orjson.dumps({"id": "no base"}) + b"\n")
    m = rebalance(StepContext(tmp_path)).metrics
    assert m["rejects"] == 2
    rejects = read(tmp_path / "data/sft_final/unsloth/qa.jsonl.rejects.jsonl")
    assert [r["line"] for r in rejects] == [28, 29]


@pytest.mark.parametrize("kwargs", [{"mode": "sideways"}, {"target": {"easy": 0.5, "hard": 0.4}},
                                    {"target": {"easy": -0.2, "hard": 1.2}}])
def test_bad_parameters_are_refused(ws: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ParameterError):
        rebalance(StepContext(ws), **kwargs)


def test_no_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        rebalance(StepContext(tmp_path))


def test_largest_remainder_splits_exactly() -> None:
    assert largest_remainder(22, TARGET) == {"easy": 7, "medium": 10, "hard": 5}
    assert sum(largest_remainder(7, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}).values()) == 7


@given(st.dictionaries(st.sampled_from(["easy", "medium", "hard"]), st.integers(0, 500),
                       min_size=1))
def test_plans_never_invent_or_lose_examples(available: dict[str, int]) -> None:
    down, _ = plan_counts(available, TARGET, "down")
    up, _ = plan_counts(available, TARGET, "up")
    for d in TARGET:
        have = available.get(d, 0)
        assert down[d] <= have
        assert up[d] >= have
        if have == 0:
            assert down[d] == up[d] == 0
