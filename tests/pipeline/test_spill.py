"""Bounded lookups: SpillMap past its cap, and steps giving the same bytes when their lookups spill."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

import pipeline._spill as spill
from coordinator.core.io import sha256_file
from coordinator.core.step import StepContext
from pipeline._spill import SpillArray, SpillMap
from pipeline.audit import audit
from pipeline.rebalance import rebalance
from pipeline.sft import build_sft
from pipeline.to_adp import to_adp
from tests.pipeline.test_audit import conversation, fixture_rows, write_sft
from tests.pipeline.test_rebalance import rows_for, write_files
from tests.pipeline.test_sft import adp_row, write_adp
from tests.pipeline.test_to_adp import chat, write_raw


def test_spill_map_answers_the_same_from_memory_and_from_disk(tmp_path: Path) -> None:
    keys = [hashlib.blake2b(str(i).encode(), digest_size=16).digest() for i in range(1000)]
    with SpillMap[bytes, int](memory_items=64, directory=tmp_path) as m:
        for i, k in enumerate(keys):
            assert m.add(k, i)
        assert m.spilled and len(m) == 1000
        assert [m.get(k) for k in keys] == list(range(1000))
        assert not m.add(keys[3], 99) and m.get(keys[3]) == 3  # old key, now on disk
        assert m.get(b"missing") is None and b"missing" not in m
        names = SpillMap[int, str](memory_items=2, directory=tmp_path)
        for i in range(10):
            names.put(i, f"base-{i}")
        assert [names.get(i) for i in range(10)] == [f"base-{i}" for i in range(10)]
        names.close()
        assert len(list(tmp_path.iterdir())) == 1  # only m's directory is left
    assert not list(tmp_path.iterdir())


def _outputs(ws: Path, sub: str) -> dict[str, str]:
    return {p.relative_to(ws).as_posix(): sha256_file(p) for p in sorted((ws / sub).rglob("*"))
            if p.is_file() and not p.name.endswith(".manifest.json")}


def test_audit_is_byte_identical_when_its_lookups_spill(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.audit as audit_module

    results = []
    for name, cap in (("memory", 1 << 20), ("disk", 2)):
        monkeypatch.setattr(spill, "MEMORY_ITEMS", cap)  # base names, first bases
        monkeypatch.setattr(audit_module, "_LOOKUP_ITEMS", cap)  # its lookups set their own cap
        ws = tmp_path / name
        write_sft(ws, fixture_rows())
        results.append((audit(StepContext(ws)).metrics, _outputs(ws, "reports/audit")))
    assert results[0] == results[1]
    assert results[0][0]["exact_dup_rows"] == 6 and results[0][0]["near_dup_pairs"] == 1


def test_to_adp_and_build_sft_find_duplicates_past_the_cap(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spill, "MEMORY_ITEMS", 4)
    write_raw(tmp_path, "qa", [chat(i) for i in range(30)] + [chat(2)])
    assert to_adp(StepContext(tmp_path)).metrics["raw_errors"] == 1
    rejects = (tmp_path / "data/adp/qa.jsonl.rejects.jsonl").read_bytes()
    assert b"duplicate id 'qa-00002'" in rejects

    write_adp(tmp_path, ["qa"], 30)
    with (tmp_path / "data/adp/qa.jsonl").open("ab") as fh:
        fh.write(orjson.dumps(adp_row("qa", 1)) + b"\n")
    result = build_sft(StepContext(tmp_path), holdout_fraction=0.0)
    assert result.metrics["rejects"] == 1 and result.metrics["examples"] == 30


@pytest.mark.parametrize("mode", ["down", "up"])
def test_rebalance_is_byte_identical_when_its_plan_spills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          mode: str) -> None:
    outputs = []
    for name, cap in (("memory", 1 << 20), ("disk", 3)):
        monkeypatch.setattr(spill, "MEMORY_ITEMS", cap)
        ws = tmp_path / name
        write_files(ws, {"qa": rows_for("qa", {"easy": 40, "medium": 25, "hard": 9}),
                         "legal": rows_for("legal", {"easy": 5, "medium": 30, "hard": 30})})
        metrics = rebalance(StepContext(ws), mode=mode).metrics  # type: ignore[arg-type]
        outputs.append((metrics, _outputs(ws, "data/sft_final"), _outputs(ws, "reports")))
    assert outputs[0] == outputs[1]


def test_bloom_filter_never_forgets_a_key_and_rarely_claims_an_absent_one(tmp_path: Path) -> None:
    from pipeline._bloom import BloomFilter, key_hash

    bloom = BloomFilter(tmp_path / "log")
    added = [key_hash(f"key-{i}") for i in range(200_000)]
    for i in range(0, len(added), 10_000):  # grows (and rebuilds) many times on the way
        bloom.add_many(added[i:i + 10_000])
    assert all(bloom.might_contain(h) for h in added)
    absent = sum(bloom.might_contain(key_hash(f"other-{i}")) for i in range(100_000))
    assert absent < 500  # ~0.17 % expected
    assert key_hash("k") == key_hash(b"k")  # a str key is hashed as its UTF-8 bytes
    assert key_hash(-3) != key_hash(3)
    bloom.close()


def test_spilled_lookups_of_new_keys_do_not_query_sqlite(tmp_path: Path) -> None:
    with SpillMap[bytes, int](memory_items=512, directory=tmp_path) as m:
        keys = [hashlib.blake2b(str(i).encode(), digest_size=16).digest() for i in range(5000)]
        for i, k in enumerate(keys):
            assert m.get(k) is None  # every key is new: the filter answers
            m.put(k, i)
        assert m._db is not None
        selects: list[str] = []
        m._db.set_trace_callback(lambda sql: selects.append(sql) if sql.startswith("SELECT") else None)
        missing = [hashlib.blake2b(f"x{i}".encode(), digest_size=16).digest() for i in range(5000)]
        assert all(m.get(k) is None for k in missing)
        assert len(selects) < 50  # only the filter's false positives reach SQLite
        assert [m.get(k) for k in keys[:600]] == list(range(600))  # spilled keys: exact answers


def test_spill_list_reads_back_what_was_appended(tmp_path: Path) -> None:
    from pipeline._spill import SpillList

    values = [f"base-{i}" + "é" * (i % 3) for i in range(50)] + [""]
    lst = SpillList(memory_items=4, directory=tmp_path)
    for v in values:
        lst.append(v)
    assert len(lst) == len(values) and [lst.get(i) for i in range(len(values))] == values
    with pytest.raises(IndexError):
        lst.get(len(values))
    lst.close()
    assert not list(tmp_path.iterdir())


def test_bloom_filter_with_fewer_bits_per_key_keeps_every_key(tmp_path: Path) -> None:
    from pipeline._bloom import BloomFilter, key_hash

    bloom = BloomFilter(tmp_path / "log", bits_per_key=8)
    added = [key_hash(i) for i in range(100_000)]
    for i in range(0, len(added), 7_000):
        bloom.add_many(added[i:i + 7_000])
    assert all(bloom.might_contain(h) for h in added)
    absent = sum(bloom.might_contain(key_hash(-1 - i)) for i in range(50_000))
    assert 50 < absent < 3_000  # ~4 % expected at 8 bits, far more than at 20


def test_spill_map_holds_bytes_values_on_disk(tmp_path: Path) -> None:
    with SpillMap[bytes, bytes](memory_items=3, directory=tmp_path) as m:
        for i in range(20):
            m.put(bytes([i]) * 16, i.to_bytes(17, "little"))
        assert m.spilled and [m.get(bytes([i]) * 16) for i in range(20)] == \
            [i.to_bytes(17, "little") for i in range(20)]


def test_spill_array_takes_values_in_any_order_from_memory_and_disk(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    monkeypatch.setattr(spill, "_TAKE_CHUNK", 5)  # many chunks on the way through the file
    values = SpillArray(memory_items=7, directory=tmp_path)
    for i in range(100):
        values.append(3 * i - 50 if i != 42 else -(1 << 40))
    assert len(values) == 100 and len(list(tmp_path.iterdir())) == 1
    idx = np.array([99, 0, 5, 5, 42, 50, 98, 93, 94, 7, 6, 1])  # file and buffer, repeats
    want = [3 * i - 50 if i != 42 else -(1 << 40) for i in idx.tolist()]
    assert values.take(idx).tolist() == want
    assert values.take(np.zeros(0, dtype=np.int64)).tolist() == []
    with pytest.raises(IndexError):
        values.take(np.array([100]))
    values.close()
    assert not list(tmp_path.iterdir())


def test_audit_counts_contents_equal_once_normalized_past_every_cap(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.audit as audit_module

    def row(base: str, text: str, n: int) -> dict[str, object]:
        return {"id": f"{base}#{n}", "conversations": conversation("Be brief.", text, text + " Done."),
                "weight": 1.0, "target_agent": "qa", "source_agent": "qa", "base_id": base,
                "category": "c", "difficulty": "easy", "variant": n}

    texts = [f"Question number {i} about topic {i * 7}?" for i in range(12)]
    rows = [row(f"b{i}", t, 0) for i, t in enumerate(texts)]
    rows += [row(f"b{i}", "  " + t.upper(), 1) for i, t in enumerate(texts)]  # same base: reuse
    rows += [row(f"c{i}", t.replace(" ", "\t "), 2) for i, t in enumerate(texts)]  # another: duplicate
    results = []
    for name, cap in (("memory", 1 << 20), ("disk", 2)):
        monkeypatch.setattr(spill, "MEMORY_ITEMS", cap)
        monkeypatch.setattr(audit_module, "_LOOKUP_ITEMS", cap)  # and the recent raw contents
        ws = tmp_path / name
        write_sft(ws, {"qa": rows})
        results.append((audit(StepContext(ws)).metrics, _outputs(ws, "reports/audit")))
    assert results[0] == results[1]
    m = results[0][0]
    assert (m["unique_texts"], m["cross_agent_reuse_rows"], m["exact_dup_rows"], m["exact_dup_groups"]) \
        == (12, 12, 12, 12)
