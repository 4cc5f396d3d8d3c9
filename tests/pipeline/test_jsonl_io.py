"""The JSONL helpers every pipeline step reads and writes with (coordinator/core/io.py)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from coordinator.core.errors import InputError
from coordinator.core.io import (
    JsonlWriter,
    Rejects,
    dumps_line,
    iter_jsonl,
    iter_jsonl_lines,
    sha256_file,
)


def test_lines_parse_as_they_did_stripped_and_bad_ones_keep_the_parsers_reason(tmp_path: Path) -> None:
    """orjson skips JSON whitespace itself; other blanks strip (``bytes.strip``) still removes, and a
    line that is not JSON is reported with the message its stripped form gives."""
    raw = [b'{"a": 1}\n', b"\n", b"   \t\r\n", b'\x0c{"b": 2}\x0b\n', b' [1, 2] \r\n', b"{\n",
           b"nul\n", b'"s"\n', b"\x0c\n", b'{"c": "\\u00e9"}']
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(raw))
    rejects_out = tmp_path / "out.jsonl"
    with Rejects(rejects_out) as rejects:
        got = list(iter_jsonl_lines(path, rejects))
    assert [(n, obj) for n, _, obj in got] == [(1, {"a": 1}), (4, {"b": 2}), (5, [1, 2]), (8, "s"),
                                               (10, {"c": "é"})]
    assert [line for _, line, _ in got] == [raw[0], raw[3], raw[4], raw[7], raw[9]]
    recs = [orjson.loads(x) for x in rejects.path.read_bytes().splitlines()]
    expected = {}
    for n in (6, 7):
        try:
            orjson.loads(raw[n - 1].strip())
        except orjson.JSONDecodeError as e:
            expected[n] = f"invalid JSON: {e}"
    assert [(r["line"], r["reason"], r["raw"]) for r in recs] == \
        [(6, expected[6], "{"), (7, expected[7], "nul")]
    assert list(iter_jsonl(path, Rejects(tmp_path / "again.jsonl"))) == [(n, o) for n, _, o in got]
    with pytest.raises(InputError) as e:
        list(iter_jsonl(path))
    assert str(e.value) == f"{path}:6: {expected[6]}"


def test_write_line_counts_and_hashes_like_write_obj(tmp_path: Path) -> None:
    objs = [{"id": i, "text": "é" * i} for i in range(50)]
    with JsonlWriter(tmp_path / "a.jsonl") as a, JsonlWriter(tmp_path / "b.jsonl") as b:
        for obj in objs:
            a.write_obj(obj)
            b.write_line(dumps_line(obj))
    assert (a.count, a.bytes, a.sha256) == (b.count, b.bytes, b.sha256) == \
        (50, (tmp_path / "a.jsonl").stat().st_size, sha256_file(tmp_path / "b.jsonl"))
