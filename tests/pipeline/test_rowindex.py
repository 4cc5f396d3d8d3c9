"""build_sft's row index lets audit skip parsing repeated rows, with exactly the same results."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from coordinator.core.errors import InternalError
from coordinator.core.io import sha256_file
from coordinator.core.step import StepContext
from pipeline._rowindex import INDEX_DIR, RowIndex, content_key, content_text, index_path
from pipeline.audit import audit
from pipeline.sft import build_sft
from tests.pipeline.test_sft import adp_row, write_adp

AGENTS = ["qa", "legal", "support"]


def _workspace(ws: Path) -> Path:
    """ADP data with an exact duplicate under another base id, a near duplicate and PII."""
    write_adp(ws, AGENTS, 40)
    qa = ws / "data/adp/qa.jsonl"
    rows = [orjson.loads(x) for x in qa.read_bytes().splitlines()]
    dup = {**rows[4], "id": "qa-dup"}  # the same conversation as qa-00004, another example
    near = orjson.loads(orjson.dumps(rows[7]))
    near["id"] = "qa-near"
    near["content"][0]["content"] += " and one more word"
    pii = adp_row("qa", 99)
    pii["content"][0]["content"] += " Mail jane.doe@example.com or call +44 20 7946 0958."
    qa.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in [*rows, dup, near, pii]))
    return ws


def _audit_outputs(ws: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    metrics = audit(StepContext(ws, force=True), sample_size=5).metrics
    out = ws / "reports/audit"
    return metrics, {p.name: p.read_bytes() for p in sorted(out.iterdir()) if not p.name.endswith(".manifest.json")}


def test_audit_gives_the_same_bytes_with_and_without_the_index(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    build_sft(StepContext(ws), holdout_fraction=0.0, variants=3)
    indexes = sorted((ws / INDEX_DIR).iterdir())
    assert len(indexes) == len(AGENTS)
    with_index = _audit_outputs(ws)
    shutil.rmtree(ws / INDEX_DIR)
    without = _audit_outputs(ws)
    assert with_index == without
    m = with_index[0]
    assert m["exact_dup_rows"] > 0 and m["near_dup_pairs"] >= 1 and m["pii_rows"] > 0


def test_an_index_is_used_only_for_the_file_it_was_written_for(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    build_sft(StepContext(ws), holdout_fraction=0.0, variants=3)
    target = ws / "data/sft/unsloth/qa.jsonl"
    rel = "data/sft/unsloth/qa.jsonl"
    assert RowIndex.open(ws, rel, sha256_file(target), target) is not None
    # an edited file has another digest: no index, the file is parsed
    rows = [orjson.loads(x) for x in target.read_bytes().splitlines()]
    rows[0]["weight"] = 7.0
    target.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    assert RowIndex.open(ws, rel, sha256_file(target), target) is None
    assert audit(StepContext(ws, force=True)).metrics["weight_out_of_range"] == 1


def test_a_rerun_replaces_the_index_of_the_earlier_file(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    build_sft(StepContext(ws), holdout_fraction=0.0, variants=3)
    build_sft(StepContext(ws, force=True), holdout_fraction=0.0, variants=2)
    names = [p.name for p in (ws / INDEX_DIR).iterdir()]
    assert len(names) == len(AGENTS)  # one per file, of its current bytes
    target = ws / "data/sft/unsloth/qa.jsonl"
    assert index_path(ws, "data/sft/unsloth/qa.jsonl", sha256_file(target)).name in names


def test_no_index_when_every_row_has_its_own_conversation(tmp_path: Path) -> None:
    write_adp(tmp_path, ["qa"], 30)
    build_sft(StepContext(tmp_path), holdout_fraction=0.0, variants=1)
    assert not (tmp_path / INDEX_DIR).exists() or not list((tmp_path / INDEX_DIR).iterdir())


def test_an_index_naming_the_wrong_row_is_a_loud_error(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    build_sft(StepContext(ws), holdout_fraction=0.0, variants=3)
    target = ws / "data/sft/unsloth/qa.jsonl"
    path = index_path(ws, "data/sft/unsloth/qa.jsonl", sha256_file(target))
    lines = path.read_bytes().splitlines()
    first_row = next(i for i, line in enumerate(lines) if not line.startswith(b'["s"'))
    rec = orjson.loads(lines[first_row])
    rec[6][0] = content_key("something else").hex()
    lines[first_row] = orjson.dumps(rec)
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(InternalError, match="does not match"):
        audit(StepContext(ws, force=True))


def test_content_text_leaves_out_system_prompts() -> None:
    conv = [{"from": "system", "value": "You are qa."}, {"from": "human", "value": "hi"},
            {"from": "gpt", "value": "hello"}]
    assert content_text(conv) == "human: hi\ngpt: hello"
    assert content_key("a") == content_key("a") != content_key("b")


def test_a_failed_build_leaves_no_index_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.sft as sft

    write_adp(tmp_path, AGENTS, 10)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(sft, "_render_source", boom)
    with pytest.raises(RuntimeError):
        build_sft(StepContext(tmp_path), holdout_fraction=0.0)
    assert list((tmp_path / INDEX_DIR).iterdir()) == []
